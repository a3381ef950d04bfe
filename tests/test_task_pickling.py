"""A process pool gets the plan's task function by reference: its worker imports the module."""

from __future__ import annotations

import cloudpickle

from plan2flow.flows import runtime


def test_the_task_function_pickles_by_reference() -> None:
    """By value, every task submitted to a process pool would carry a copy of the function's
    code and globals (about 6 KB), and a code object that cannot be pickled (a coverage probe)
    would fail the run."""
    payload = cloudpickle.dumps(runtime.plan_task.fn)
    assert cloudpickle.loads(payload) is runtime.plan_task.fn
    assert len(payload) < 200
    assert runtime.plan_task.name == "plan_task"
