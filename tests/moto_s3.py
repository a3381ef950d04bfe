"""A real S3-speaking server on 127.0.0.1 for tests: moto's server mode, one process per use."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from support import free_port, need_service

BINARY = Path(sys.executable).parent / "moto_server"
CREDENTIALS: dict[str, Any] = {
    "key": "testing",
    "secret": "testing",
    "client_kwargs": {"region_name": "us-east-1"},
}
"""What s3fs needs to talk to moto (which accepts any credentials): never the environment's."""


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return int(response.status) == 200
    except (OSError, urllib.error.URLError):
        return False


@contextlib.contextmanager
def moto_server(timeout: float = 60) -> Iterator[str]:
    """Start ``moto_server`` on a free port, wait until it answers, yield its endpoint URL, and
    kill it (and wait for it) at the end."""
    need_service(BINARY.exists(), f"no moto_server ({BINARY}): install moto[server]")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen(
        [str(BINARY), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + timeout
        while not _answers(url):
            if process.poll() is not None:
                raise AssertionError(f"moto_server exited with status {process.returncode}")
            if time.monotonic() > deadline:
                raise AssertionError(f"moto_server did not answer on {url} within {timeout:g}s")
            time.sleep(0.05)
        yield url
    finally:
        if process.poll() is None:
            os.kill(process.pid, signal.SIGKILL)
        process.wait(30)


def new_bucket(endpoint: str) -> str:
    """A bucket of its own for one test."""
    import s3fs  # type: ignore[import-untyped]

    name = f"t-{uuid.uuid4().hex[:20]}"
    fs = s3fs.S3FileSystem(
        endpoint_url=endpoint, skip_instance_cache=True, use_listings_cache=False, **CREDENTIALS
    )
    fs.call_s3("create_bucket", Bucket=name)
    return name
