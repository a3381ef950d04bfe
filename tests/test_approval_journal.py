"""The intervention journal: each approval request and answer is an audit entry, by the person
who answered, once per run and task, in the run's tenant's chain."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from plan2flow.flows.approval_events import journal
from plan2flow.flows.workspace import RunPlace
from plan2flow.memory.audit import entries, verify
from plan2flow.memory.db.engine import configured_database


def test_an_answer_is_journaled_once_by_its_respondent(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLAN2FLOW_HOME", str(tmp_path / "home"))
    place = RunPlace("release", "sha256:" + "1" * 64, str(uuid.uuid4()), "", "")
    answer = {"respondent": "ada", "option": "approve", "form": {"ticket": "REL-7"}}
    assert journal(place, "approval.requested", "gate", {"options": ["approve", "reject"]})
    assert journal(place, "approval.given", "gate", answer)
    assert journal(place, "approval.given", "gate", answer)  # a retried hook: the same entry
    with configured_database() as database, database.session("default") as session:
        found = list(entries(session, "default"))
        assert verify(session, "default").count == len(found)
    given = [e for e in found if e.action == "approval.given"]
    assert len(given) == 1 and [e.action for e in found].count("approval.requested") == 1
    [entry] = given
    assert (entry.actor, entry.subject) == ("ada", "release/gate")
    assert entry.detail["option"] == "approve" and entry.detail["form"] == {"ticket": "REL-7"}
    assert entry.detail["flow_run_id"] == place.flow_run_id


def test_an_unwritable_journal_never_loses_the_answer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PLAN2FLOW_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("PLAN2FLOW_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    place = RunPlace("release", "sha256:" + "1" * 64, str(uuid.uuid4()), "", "")
    assert journal(place, "approval.given", "gate", {"respondent": "ada"}) is False
