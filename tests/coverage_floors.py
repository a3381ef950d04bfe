"""Report the suite's line coverage and enforce its floors: 80 % overall, 95 % on `compiler/`.

`make pytest` runs pytest under SlipCover, which writes the merged coverage of the xdist
workers as JSON; this prints the files not fully covered, with their missing lines, and exits 1
when a floor is not met. Usage: `python tests/coverage_floors.py build/coverage.json`."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import slipcover

FLOORS = {"": 80.0, "compiler/": 95.0}


def percent(files: dict[str, Any], prefix: str) -> float:
    """Covered lines over measured lines, in percent, of the files under `prefix`."""
    covered = missing = 0
    for name, data in files.items():
        if name.startswith(prefix):
            covered += data["summary"]["covered_lines"]
            missing += data["summary"]["missing_lines"]
    return 100.0 * covered / (covered + missing) if covered + missing else 0.0


def below_floors(files: dict[str, Any]) -> list[str]:
    """One line per floor not met."""
    return [
        f"{prefix or 'overall'} line coverage is {found:.1f} %, below {floor:.0f} %"
        for prefix, floor in FLOORS.items()
        if (found := percent(files, prefix)) < floor
    ]


def main(path: str) -> int:
    coverage = json.loads(Path(path).read_text(encoding="utf-8"))
    slipcover.print_coverage(coverage, outfile=sys.stdout, skip_covered=True)
    files = coverage["files"]
    print("; ".join(f"{p or 'overall'} {percent(files, p):.1f} %" for p in FLOORS))
    failures = below_floors(files)
    for failure in failures:
        print(failure, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
