"""A busy Prefect server (429, 502, 503: its database locked under load) is asked again, as it
says or with a growing wait; other errors are reported at once."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from plan2flow.server.remote import BUSY_RETRIES, Api, RemoteError


class Scripted(ThreadingHTTPServer):
    """Answers each request with the next status of its script (then 200 and a JSON body)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.script: list[int] = []
        self.seen = 0


class Handler(BaseHTTPRequestHandler):
    server: Scripted

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        self.server.seen += 1
        status = self.server.script.pop(0) if self.server.script else 200
        body = json.dumps({"status": "ACCEPT"} if status == 200 else {"detail": "busy"}).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        if status != 200:
            self.send_header("retry-after", "0")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def server() -> Iterator[Scripted]:
    scripted = Scripted()
    thread = threading.Thread(target=scripted.serve_forever, daemon=True)
    thread.start()
    yield scripted
    scripted.shutdown()
    scripted.server_close()


def _api(server: Scripted) -> Api:
    return Api(f"http://127.0.0.1:{server.server_address[1]}/api")


def test_a_busy_server_is_asked_again(server: Scripted) -> None:
    server.script = [503, 429, 502]
    with _api(server) as api:
        assert api.call("POST", "/flow_runs/x/resume", {"run_input": {}}) == {"status": "ACCEPT"}
    assert server.seen == 4


def test_a_server_busy_for_too_long_is_an_error(server: Scripted) -> None:
    server.script = [503] * (BUSY_RETRIES + 2)
    with _api(server) as api, pytest.raises(RemoteError, match="answered 503"):
        api.call("POST", "/flow_runs/x/resume", {})
    assert server.seen == BUSY_RETRIES


def test_other_errors_are_not_retried(server: Scripted) -> None:
    server.script = [500]
    with _api(server) as api, pytest.raises(RemoteError, match="answered 500"):
        api.call("POST", "/flow_runs/x/resume", {})
    assert server.seen == 1
