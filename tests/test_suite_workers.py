"""The suite's own promise about workers: tests that share an expensive fixture run in one
pytest-xdist worker (tests/conftest.py marks them with `xdist_group`). pytest-xdist carries the
group in the node id; when a pytest release stops honouring that (pytest 9.2 with xdist 3.8,
pytest-xdist#1386), every worker starts the shared servers again and nothing else fails."""

from __future__ import annotations

import os

import pytest

GROUP = "suite-workers-check"


@pytest.mark.xdist_group(GROUP)
def test_grouped_tests_carry_their_group_to_the_scheduler(request: pytest.FixtureRequest) -> None:
    if "PYTEST_XDIST_WORKER" not in os.environ or not request.config.getoption("loadgroup", False):
        pytest.skip("only a pytest-xdist worker of `--dist loadgroup` sees the group")
    assert request.node.nodeid.endswith(f"@{GROUP}"), (
        f"{request.node.nodeid}: pytest-xdist's group is not in the node id, so --dist loadgroup"
        " spreads the tests that share a server over every worker"
    )


def test_conftest_groups_the_tests_that_share_module_fixtures(
    request: pytest.FixtureRequest,
) -> None:
    """Every test that uses the determinism tests' CLI runs is in one group."""
    items = [
        item
        for item in request.session.items
        if item.nodeid.startswith("tests/test_determinism.py")
        and "cli_runs" in getattr(item, "fixturenames", ())
    ]
    if not items:
        pytest.skip("tests/test_determinism.py is not in this run")
    groups = {tuple(mark.args) for item in items for mark in item.iter_markers("xdist_group")}
    assert len(groups) == 1, groups
