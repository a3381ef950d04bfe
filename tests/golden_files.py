"""A syrupy extension that stores a compiler output as one plain file under ``tests/golden/``.

syrupy's own layouts (``__snapshots__``, re-serialised JSON) do not fit golden files that
reviewers read: these hold the compiler's exact bytes, one file per output, one folder per case.
``pytest --snapshot-update`` rewrites them; a missing file fails the test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode
from syrupy.location import PyTestLocation

GOLDEN = Path(__file__).parent / "golden"


def golden_file(relative: str) -> type[SingleFileSnapshotExtension]:
    """An extension whose snapshot is exactly the file ``tests/golden/<relative>``."""
    path = GOLDEN / relative
    stem, _, suffix = path.name.rpartition(".")

    class GoldenFile(SingleFileSnapshotExtension):
        _write_mode = WriteMode.TEXT
        file_extension = suffix

        @classmethod
        def dirname(cls, *, test_location: PyTestLocation) -> str:
            return str(path.parent)

        @classmethod
        def matches_test_location(
            cls, *, test_location: PyTestLocation, snapshot_location: str
        ) -> bool:
            return Path(snapshot_location) == path

        @classmethod
        def get_snapshot_name(cls, *, test_location: PyTestLocation, index: Any = 0) -> str:
            return stem

    return GoldenFile
