"""A real HTTP server on 127.0.0.1 that speaks the OpenAI chat-completions wire format, scripted
per test: each request gets the next :class:`Reply` (the last one repeats), or what a function of
the request returns. Every request is captured (headers and raw body) for assertions.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclasses.dataclass(frozen=True)
class Reply:
    status: int = 200
    content: str | None = None
    """The assistant's message of a 200 answer."""
    body: str | None = None
    """A raw body instead of a chat completion."""
    headers: dict[str, str] = dataclasses.field(default_factory=dict)
    usage: dict[str, int] | None = dataclasses.field(
        default_factory=lambda: {"prompt_tokens": 100, "completion_tokens": 50}
    )
    model: str = "fake-model"
    delay_s: float = 0.0
    """Hold the answer this long (released at once when the server stops)."""


def bodies(content: dict[str, str]) -> str:
    """An answer's content: the bodies of the functions, as JSON."""
    return json.dumps({"bodies": content})


def error_body(message: str, kind: str = "server_error") -> str:
    return json.dumps({"error": {"message": message, "type": kind}})


@dataclasses.dataclass(frozen=True)
class Captured:
    path: str
    headers: dict[str, str]
    raw: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.raw)


Script = list[Reply] | Callable[[Captured], Reply]


class FakeOpenAI:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[Captured] = []
        self._lock = threading.Lock()
        self._released = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def _next(self, captured: Captured) -> Reply:
        with self._lock:
            self.requests.append(captured)
            if callable(self.script):
                return self.script(captured)
            index = min(len(self.requests), len(self.script)) - 1
            return self.script[index]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True  # headers and body in separate writes: no 40 ms stall

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                reply = fake._next(Captured(self.path, headers, raw))
                if reply.delay_s:
                    fake._released.wait(reply.delay_s)
                if reply.body is not None:
                    payload = reply.body.encode()
                else:
                    answer: dict[str, Any] = {
                        "id": f"chatcmpl-{len(fake.requests)}",
                        "object": "chat.completion",
                        "model": reply.model,
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": reply.content},
                                "finish_reason": "stop",
                            }
                        ],
                    }
                    if reply.usage is not None:
                        answer["usage"] = {
                            **reply.usage,
                            "total_tokens": sum(reply.usage.values()),
                        }
                    payload = json.dumps(answer).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

        return Handler

    def start(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._released.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@contextmanager
def fake_openai(script: Script) -> Iterator[FakeOpenAI]:
    server = FakeOpenAI(script).start()
    try:
        yield server
    finally:
        server.stop()


class Waits:
    """Records the waits asked for instead of sleeping: tests measure the delay requested."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)
