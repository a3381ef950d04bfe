"""One root error per part: every error a part raises descends from it and carries the exit
status the command line ends with; the entry point turns any of them into one line."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import subprocess
import sys

import pytest

from plan2flow.cli import part_error

ROOTS = {
    "plan2flow.compiler": ("plan2flow.compiler.errors", "CompilerError"),
    "plan2flow.flows": ("plan2flow.flows.errors", "FlowsError"),
    "plan2flow.agents": ("plan2flow.agents.errors", "AgentError"),
    "plan2flow.escalation": ("plan2flow.escalation.errors", "EscalationError"),
    "plan2flow.events": ("plan2flow.events.errors", "EventError"),
    "plan2flow.observability": ("plan2flow.observability.errors", "ObservabilityError"),
    "plan2flow.server": ("plan2flow.server.errors", "OperationError"),
}


def _modules(part: str) -> list[str]:
    package = importlib.import_module(part)
    return [part] + [
        info.name for info in pkgutil.walk_packages(package.__path__, prefix=f"{part}.")
    ]


@pytest.mark.parametrize("part", sorted(ROOTS))
def test_every_public_error_of_a_part_descends_from_its_root(part: str) -> None:
    module, name = ROOTS[part]
    root = getattr(importlib.import_module(module), name)
    assert isinstance(root.exit_status, int)
    found = []
    for module_name in _modules(part):
        for cls_name, cls in inspect.getmembers(importlib.import_module(module_name)):
            if (
                inspect.isclass(cls)
                and issubclass(cls, Exception)
                and cls.__module__ == module_name
                and not cls_name.startswith("_")
            ):
                found.append(cls)
                assert issubclass(cls, root), f"{module_name}.{cls_name} is not a {name}"
    assert root in found


def test_the_entry_point_knows_each_root_and_its_status() -> None:
    from plan2flow.compiler import PlanError, TaskGraphError
    from plan2flow.events.errors import BusUnavailable, UnsupportedServer
    from plan2flow.flows.errors import StaleModuleError, TaskFailure
    from plan2flow.server.errors import OperationError
    from plan2flow.server.launch import Interrupted

    assert part_error(PlanError([])) == 1
    assert part_error(TaskGraphError("bad", "g.json")) == 2
    assert part_error(BusUnavailable("down")) == 3
    assert part_error(UnsupportedServer("2.9")) == 4
    assert part_error(TaskFailure("boom")) == 1
    assert part_error(StaleModuleError("stale")) == 2
    assert part_error(OperationError("no")) == 2
    assert part_error(Interrupted(15, None)) == 143
    assert part_error(ValueError("a bug")) is None


@pytest.mark.slow
def test_an_unhandled_part_error_ends_in_one_line_and_its_status() -> None:
    """A stand-in command raising a part's error, run through the real entry point."""
    code = (
        "from plan2flow.cli import app, main\n"
        "from plan2flow.events.errors import BusUnavailable\n"
        "@app.command('boom')\n"
        "def boom() -> None:\n"
        "    raise BusUnavailable('nats://127.0.0.1:1: no servers available')\n"
        "import sys; sys.argv = ['plan2flow', 'boom']; main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 3
    assert done.stderr == "plan2flow: nats://127.0.0.1:1: no servers available\n"
    assert done.stdout == ""
