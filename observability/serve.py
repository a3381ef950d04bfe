"""``/metrics`` over HTTP for Prometheus to scrape: a small threaded server on one address."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from .errors import ServeError


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        return  # one line per scrape would drown the logs


class _ThreadingWSGIServer(ThreadingHTTPServer, WSGIServer):
    daemon_threads = True


class MetricsServer:
    """Serves `registry` on ``http://host:port/metrics`` from a thread until :meth:`close`."""

    def __init__(self, registry: CollectorRegistry, host: str = "127.0.0.1", port: int = 0):
        try:
            self._server = make_server(
                host,
                port,
                make_wsgi_app(registry),
                server_class=_ThreadingWSGIServer,
                handler_class=_QuietHandler,
            )
        except OSError as error:
            raise ServeError(
                f"cannot serve metrics on {host}:{port}: {error.strerror or error}"
            ) from None
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="plan2flow-metrics-http", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
