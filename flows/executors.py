"""What each task type does when it runs. `shell`, `python` and `noop` run in the process
that runs the task (the flow's own under the generated thread pool); the software-factory types
are dispatched to their agent through :func:`resolve_agent`."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from plan2flow.observability import tracing

from . import commands
from .errors import AgentNotRegisteredError, TaskFailure
from .graph import GraphTask
from .observing import agent_called
from .templates import as_text, env_name
from .tether import tethered


@dataclasses.dataclass(frozen=True)
class TaskContext:
    """Everything an executor needs: resolved params, paths of inputs and outputs, directories."""

    task: GraphTask
    params: dict[str, Any]
    inputs: dict[str, Path]
    outputs: dict[str, Path]
    workdir: Path
    logs_dir: Path
    correlation_id: str = ""
    param_values: dict[str, Any] = dataclasses.field(default_factory=dict)
    """The plan parameters the task's params refer to, by name."""


Executor = Callable[[TaskContext], Any]

TAIL_LINES = 20


def _tail(path: Path) -> str:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return "\n".join(lines[-TAIL_LINES:])


def _shell_variables(context: TaskContext) -> dict[str, str]:
    """The ``P2F_*`` variables of a shell task: its id, workspace, input and output paths and
    the plan parameters it refers to. Two names that would share a variable are refused rather
    than one silently hiding the other."""
    variables = {"P2F_TASK_ID": context.task.id, "P2F_WORKDIR": str(context.workdir)}
    named = [
        *(("inputs", name, str(path)) for name, path in context.inputs.items()),
        *(("outputs", name, str(path)) for name, path in context.outputs.items()),
        *(("params", name, as_text(value)) for name, value in context.param_values.items()),
    ]
    owners: dict[str, str] = {}
    for namespace, name, value in named:
        variable = env_name(namespace, name)
        if variable in owners:
            raise TaskFailure(
                f"{owners[variable]} and {namespace} '{name}' both map to ${variable}"
            )
        owners[variable] = f"{namespace} '{name}'"
        variables[variable] = value
    return variables


def run_shell(context: TaskContext) -> None:
    """Run argv without a shell (or argv[0] as an ``sh -c`` script with ``shell: true``), with the
    task's env, in its working directory; stdout and stderr go to files kept as artifacts."""
    params = context.params
    argv = list(params["argv"])
    if params.get("shell"):
        argv = ["/bin/sh", "-c", argv[0], "sh", *argv[1:]]
    cwd = context.workdir
    if params.get("cwd"):
        cwd = (context.workdir / params["cwd"]).resolve()
        if not cwd.is_relative_to(context.workdir.resolve()):
            raise TaskFailure(f"cwd {params['cwd']!r} leaves the task's workspace")
        cwd.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        **params.get("env", {}),
        **_shell_variables(context),
        **tracing.subprocess_env(),
    }
    stdout, stderr = context.logs_dir / "stdout.txt", context.logs_dir / "stderr.txt"
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        try:
            status = commands.run(
                tethered(argv),  # a task's command dies with the run, even a killed one
                cwd=cwd,
                env=env,
                stdout=out,
                stderr=err,
                timeout=context.task.timeout_seconds,
                flow_run_id=context.correlation_id,
            )
        except FileNotFoundError:
            raise TaskFailure(f"command not found: {argv[0]!r}") from None
        except ValueError as error:  # a NUL byte in an argument or in the environment
            raise TaskFailure(f"cannot run {argv[0]!r}: {error}") from None
        except subprocess.TimeoutExpired:
            raise TaskFailure(
                f"timed out after {context.task.timeout_seconds} s: {' '.join(argv)}"
            ) from None
    if status != 0:
        tail = _tail(stderr)
        raise TaskFailure(
            f"exit status {status}: {' '.join(argv)}"
            + (f"\n--- stderr (last lines)\n{tail}" if tail else "")
        )


def run_python(context: TaskContext) -> None:
    """Call ``module:function`` with its kwargs, its inputs as paths, and, if it takes one, an
    ``outputs`` mapping of paths to write. A JSON-serializable return value is kept as
    ``return.json``."""
    module_name, _, function_name = context.params["callable"].partition(":")
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as error:
        raise TaskFailure(f"cannot load {context.params['callable']!r}: {error}") from None
    arguments: dict[str, Any] = {**context.params.get("kwargs", {}), **context.inputs}
    try:
        if "outputs" in _parameters(function):
            arguments["outputs"] = context.outputs
        value = function(**arguments)
    except Exception as error:
        raise TaskFailure(
            f"task {context.task.id!r}: {context.params['callable']} raised "
            f"{type(error).__name__}: {error}"
        ) from error
    if value is not None:
        (context.logs_dir / "return.json").write_text(
            json.dumps(value, sort_keys=True, default=str) + "\n", encoding="utf-8"
        )


def _parameters(function: Any) -> Mapping[str, Any]:
    """The callable's parameter names; none known for a builtin without a signature."""
    try:
        return inspect.signature(function).parameters
    except (TypeError, ValueError):
        return {}


def run_noop(context: TaskContext) -> None:
    """A join point: nothing to do."""


_AGENT_DOCUMENTS: dict[tuple[str, str], Any] = {}
_AGENT_LOCK = threading.Lock()
DEFAULT_DOCUMENT = "default"


def load_agent(slug: str, document: str) -> Any:
    """The agent block document `document` of block type `slug`, loaded once per process.

    The document ``default`` is created from the type's defaults when the server has none, so a
    plan runs on a fresh installation with no set-up step. Processes starting together (the
    tasks of a process pool, runs on several workers) may all find none: the first creates it,
    the others load what it created.
    """
    from plan2flow.agents import AGENTS

    cls = AGENTS.get(slug)
    if cls is None:
        raise AgentNotRegisteredError(f"no agent registered for block type '{slug}'")
    with _AGENT_LOCK:
        cached = _AGENT_DOCUMENTS.get((slug, document))
        if cached is not None:
            return cached
        try:
            agent = cls.load(document)
        except ValueError:
            if document != DEFAULT_DOCUMENT:
                raise AgentNotRegisteredError(
                    f"no agent document '{document}' of block type '{slug}' on the Prefect "
                    f"server; create it, or use the default"
                ) from None
            agent = _created_default(cls)
        _AGENT_DOCUMENTS[(slug, document)] = agent
        return agent


def _created_default(cls: Any) -> Any:
    """The ``default`` document of agent class `cls`, created now or by whoever came first."""
    agent = cls()
    try:
        agent.save(DEFAULT_DOCUMENT, overwrite=False)
    except ValueError:  # Prefect's answer to a name already taken: another process created it
        return cls.load(DEFAULT_DOCUMENT)
    return agent


def resolve_agent(task: GraphTask) -> Executor:
    """The agent block that executes a software-factory task, as an executor."""
    from plan2flow.agents import AGENTS, AgentRequest, Outcome

    agent_ref = task.agent or {}
    slug, document = agent_ref.get("block_type", ""), agent_ref.get("block_document", "")
    if slug not in AGENTS:
        raise AgentNotRegisteredError(
            f"no agent registered for type '{task.type}' (block type '{slug}', "
            f"document '{document}')"
        )

    def execute(context: TaskContext) -> None:
        agent = load_agent(slug, document)
        lacking = agent.missing(set(context.inputs), set(context.outputs))
        if lacking:
            raise TaskFailure(
                f"the '{task.type}' agent needs {lacking}: wire it in the task's inputs/outputs "
                "(components and delivery do this for you)"
            )
        health = agent.health()
        if not health.ok:
            raise TaskFailure(f"agent '{slug}/{document}' is unhealthy: {health.detail}")
        request = AgentRequest(
            task_id=task.id,
            task_type=task.type,
            params=context.params,
            inputs={name: str(path) for name, path in context.inputs.items()},
            outputs={name: str(path) for name, path in context.outputs.items()},
            workspace=str(context.workdir),
            correlation_id=context.correlation_id,
            escalation=task.escalation,
            plan=task.plan,
            checks=list(task.checks),
        )
        began = time.monotonic()
        try:
            with tracing.span(f"agent {slug}", attributes={"plan2flow.agent": slug}):
                result = agent.execute(request)
        except Exception as error:
            agent_called(slug, time.monotonic() - began, "error")
            raise TaskFailure(
                f"task {task.id!r}: agent '{slug}/{document}' raised "
                f"{type(error).__name__}: {error}"
            ) from error
        agent_called(slug, time.monotonic() - began, result.outcome.value)
        (context.logs_dir / "agent-result.json").write_text(
            result.model_dump_json(indent=2) + "\n", encoding="utf-8"
        )
        if result.outcome is not Outcome.SUCCEEDED:
            shown = "\n".join(result.findings[:TAIL_LINES])
            raise TaskFailure(f"agent '{slug}/{document}' reports failure:\n{shown}")

    return execute


EXECUTORS: dict[str, Executor] = {"shell": run_shell, "python": run_python, "noop": run_noop}


def executor_for(task: GraphTask) -> Executor:
    return EXECUTORS.get(task.type) or resolve_agent(task)
