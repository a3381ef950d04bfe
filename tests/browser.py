"""Headless Chromium driven over the DevTools protocol, for tests of the Prefect UI.

Debian's `chromium` package (no browser download); the DevTools websocket is spoken with the
`websockets` library that Prefect already installs.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS_ENV = "PLAN2FLOW_SCREENSHOTS"
"""A directory for the browser tests' screenshots: ``docs/images`` refreshes the docs' pictures."""
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
]


class Page:
    """One browser tab: navigate, read its text, take a screenshot."""

    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self.ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self.ids)
        self.socket.send(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=60))
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))

    def open(self, url: str, width: int = 1400, height: int = 900) -> None:
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        self.call("Page.enable")
        self.call("Page.navigate", url=url)

    def text(self) -> str:
        result = self.call(
            "Runtime.evaluate", expression="document.body.innerText", returnByValue=True
        )
        return str(result.get("result", {}).get("value") or "")

    def wait_for_text(self, expected: list[str], timeout: float = 60) -> str:
        """Wait until every expected string is on the page; return the page's text."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.text()
            if all(item in text for item in expected) or time.monotonic() > deadline:
                return text
            time.sleep(0.5)

    def wait_for_canvas(self, timeout: float = 60) -> bool:
        """Wait until the page shows a canvas of some size, then for two animation frames (one
        to draw, one to show): the Prefect UI draws a run's graph on a canvas after its text."""
        sized = (
            "[...document.querySelectorAll('canvas')].some(c => {"
            " const box = c.getBoundingClientRect(); return box.width > 0 && box.height > 0; })"
        )
        frames = (
            "new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))"
        )
        deadline = time.monotonic() + timeout
        while True:
            found = self.call("Runtime.evaluate", expression=sized, returnByValue=True)
            if found.get("result", {}).get("value"):
                self.call("Runtime.evaluate", expression=frames, awaitPromise=True)
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)

    def click_text(self, label: str) -> bool:
        """Click the innermost element whose text is exactly `label` (a tab, a button, ...)."""
        script = (
            "(() => { const all = [...document.querySelectorAll('body *')].reverse();"
            f" const hit = all.find(e => (e.innerText || '').trim() === {json.dumps(label)});"
            " if (hit) { hit.click(); return true; } return false; })()"
        )
        result = self.call("Runtime.evaluate", expression=script, returnByValue=True)
        return bool(result.get("result", {}).get("value"))

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path


def screenshots(default: Path) -> Path:
    """Where the browser tests keep their screenshots: the directory ``PLAN2FLOW_SCREENSHOTS``
    names, else `default` (a test's temporary directory), so that a run of the suite leaves the
    checkout as it found it."""
    named = os.environ.get(SCREENSHOTS_ENV)
    return Path(named) if named else default


@contextmanager
def chromium() -> Iterator[Page]:
    """A headless Chromium with one page; closed on exit."""
    assert CHROMIUM is not None, "chromium is not installed"
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        process = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        drain: threading.Thread | None = None
        try:
            assert process.stderr is not None
            port = None
            deadline = time.monotonic() + 30
            while port is None and time.monotonic() < deadline:
                line = process.stderr.readline()
                found = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
                if found:
                    port = int(found.group(1))
            assert port is not None, "chromium did not open its DevTools port"
            # Chromium keeps logging to stderr; drain it so a full pipe never blocks the browser.
            drain = threading.Thread(target=process.stderr.read, daemon=True)
            drain.start()
            targets = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
            page = next(t for t in targets if t.get("type") == "page")
            with connect(page["webSocketDebuggerUrl"], max_size=2**26) as socket:
                yield Page(socket)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
            if drain is not None:
                drain.join(timeout=10)
            if process.stderr is not None:
                process.stderr.close()
