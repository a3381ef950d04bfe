"""The suite's own promises about its shared servers, which no other test would notice broken.

Tests that share an expensive fixture run in one pytest-xdist worker (tests/conftest.py marks
them with `xdist_group`). pytest-xdist carries the group in the node id; when a pytest release
stops honouring that (pytest 9.2 with xdist 3.8, pytest-xdist#1386), every worker starts the
shared servers again and nothing else fails. And the servers seeded from the migrated template
skip block registration: a template without the block types would serve none."""

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


@pytest.mark.usefixtures("own_prefect_api")
def test_a_seeded_api_serves_every_prefect_block_type_without_registering_them() -> None:
    """A server seeded from the migrated template starts with block registration off
    (tests/prefect_db.py): every block type of Prefect's own must come from the template."""
    from prefect.blocks.core import Block
    from prefect.client.orchestration import get_client
    from prefect.utilities.dispatch import get_registry_for_type

    prefects = {
        block.get_block_type_slug()
        for block in (get_registry_for_type(Block) or {}).values()
        if block.__module__.startswith("prefect.")
    }
    with get_client(sync_client=True) as client:
        served = {block_type.slug for block_type in client.read_block_types()}
    assert "local-file-system" in prefects
    assert prefects <= served, sorted(prefects - served)
