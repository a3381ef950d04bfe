"""The temporary Prefect server of ``plan2flow run`` when no server is configured.

Prefect's ephemeral mode starts ``uvicorn`` in a child process on first use, in this process's
group and from whatever thread asks first. A Ctrl-C in the terminal then reaches the server as
well and kills it under the running flow, and a ``kill -9`` of this process leaves it running.
So ``plan2flow run`` starts it itself, from the main thread, in a session of its own and
tethered to this process (see :mod:`plan2flow.flows.tether`), and registers it as the
ephemeral server that Prefect's clients look up.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import prefect
from prefect.server.api.server import SubprocessASGIServer
from prefect.settings import PREFECT_API_URL, get_current_settings

from plan2flow.flows.tether import tethered


class TetheredServer(SubprocessASGIServer):
    """Prefect's ephemeral server, started in its own session and tethered to this process."""

    def _run_uvicorn_command(self) -> subprocess.Popen[Any]:
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "--app-dir",
            str(prefect.__module_path__.parent),
        ]
        command += ["--factory", "prefect.server.api.server:create_app"]
        command += ["--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--log-level", "error", "--lifespan", "on"]
        env = {
            **os.environ,
            "PREFECT_UI_ENABLED": "0",
            "PREFECT__SERVER_EPHEMERAL": "1",
            "PREFECT__SERVER_FINAL": "1",
            **get_current_settings().to_environment_variables(exclude_unset=True),
        }
        return subprocess.Popen(tethered(command), env=env, start_new_session=True)


def start_temporary_server() -> SubprocessASGIServer | None:
    """Start the ephemeral server now (call from the main thread), unless a server is
    configured; Prefect's clients then use it instead of starting one of their own."""
    if PREFECT_API_URL.value():
        return None
    server = TetheredServer()  # the ephemeral instance Prefect looks up, if none exists yet
    server.start()
    return server
