"""The audit hash chain, pure: canonical bytes pinned, and every kind of tampering found at the
right entry with the right reason."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib

import pytest

from plan2flow.memory.audit_chain import (
    GENESIS_HASH,
    ChainEntry,
    canonical_bytes,
    entry_hash,
    format_time,
    plain_json,
    verify_chain,
    walk_chain,
)

T0 = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)


def chained(tenant: str, count: int) -> list[ChainEntry]:
    """A valid chain of `count` entries."""
    entries: list[ChainEntry] = []
    prev = GENESIS_HASH
    for seq in range(1, count + 1):
        entry = forge(tenant, seq, prev, subject=f"etl/t{seq}")
        entries.append(entry)
        prev = entry.hash
    return entries


def forge(tenant: str, seq: int, prev_hash: str, subject: str = "forged") -> ChainEntry:
    """An entry whose own hash is right (what an attacker who knows the scheme writes)."""
    entry = ChainEntry(
        tenant=tenant,
        seq=seq,
        time=T0 + dt.timedelta(seconds=seq, microseconds=seq),
        actor="ada",
        action="task.completed",
        subject=subject,
        detail={"seq": seq},
        prev_hash=prev_hash,
        hash="",
    )
    return rehash(entry)


def rehash(entry: ChainEntry) -> ChainEntry:
    return dataclasses.replace(entry, hash=entry_hash(entry))


def test_canonical_bytes_and_hash_are_pinned() -> None:
    """The format is forever: a change here breaks every journal already written."""
    entry = ChainEntry(
        tenant="acme",
        seq=7,
        time=dt.datetime(2026, 11, 30, 10, 0, 0, 5, tzinfo=dt.timezone(dt.timedelta(hours=1))),
        actor="ada",
        action="deploy",
        subject="etl",
        detail={"z": 1, "a": {"é": [1.5, None, True]}},
        prev_hash=GENESIS_HASH,
        hash="",
    )
    pinned = (
        '{"action":"deploy","actor":"ada","detail":{"a":{"é":[1.5,null,true]},"z":1},'
        f'"prev_hash":"{GENESIS_HASH}","seq":7,"subject":"etl","tenant":"acme",'
        '"time":"2026-11-30T09:00:00.000005Z"}'
    ).encode()
    assert canonical_bytes(entry) == pinned
    assert entry_hash(entry) == hashlib.sha256(pinned).hexdigest()
    assert entry_hash(entry) == "1fadf0df19b572d47d10ba76942c7fa4c58e8340e6754a5e3139d4824555a077"


def test_a_naive_time_is_utc_and_every_time_has_microseconds() -> None:
    assert format_time(dt.datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05.000000Z"
    assert format_time(dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)) == (
        "2026-01-02T03:04:05.000000Z"
    )


def test_plain_json_is_what_either_database_gives_back() -> None:
    assert plain_json({"t": (1, 2), "z": -0.0, "big": 1e20, "small": 1e-7}) == {
        "t": [1, 2],
        "z": 0.0,
        "big": 100000000000000000000,
        "small": 1e-7,
    }
    with pytest.raises(ValueError):
        plain_json({"x": float("nan")})


def test_an_intact_chain_verifies_with_its_count_and_head() -> None:
    entries = chained("acme", 5)
    walk = walk_chain(entries)
    assert (walk.problem, walk.count, walk.last_seq, walk.head) == (None, 5, 5, entries[-1].hash)
    assert verify_chain([]) is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("actor", "mallory"),
        ("action", "deploy"),
        ("subject", "elsewhere"),
        ("detail", {"seq": 99}),
        ("time", T0),
        ("hash", "f" * 64),
    ],
)
def test_an_edited_field_is_found_at_its_entry(field: str, value: object) -> None:
    entries = chained("acme", 5)
    entries[2] = dataclasses.replace(entries[2], **{field: value})
    problem = verify_chain(entries)
    assert problem is not None
    assert (problem.seq, problem.kind) == (3, "edited")
    assert str(problem) == "entry 3 was edited: its hash does not match its contents"


def test_an_edited_and_rehashed_entry_breaks_the_link_of_the_next() -> None:
    entries = chained("acme", 5)
    entries[2] = rehash(dataclasses.replace(entries[2], actor="mallory"))
    problem = verify_chain(entries)
    assert problem is not None
    assert (problem.seq, problem.kind) == (4, "unlinked")
    assert "entry 3 rewritten" in problem.reason


def test_a_removed_entry_is_named() -> None:
    entries = chained("acme", 5)
    del entries[2]
    problem = verify_chain(entries)
    assert problem is not None
    assert (problem.seq, problem.kind, problem.reason) == (
        3,
        "removed",
        "entry 3 removed: the journal goes from 2 to 4",
    )
    problem = verify_chain(chained("acme", 5)[2:])
    assert problem is not None
    assert (problem.seq, problem.reason) == (1, "entries 1-2 removed: the journal starts at 3")


def test_a_removed_entry_with_the_rest_renumbered_is_found() -> None:
    entries = chained("acme", 5)
    del entries[2]
    entries[2:] = [dataclasses.replace(e, seq=e.seq - 1) for e in entries[2:]]
    problem = verify_chain(entries)
    assert problem is not None
    assert (problem.seq, problem.kind) == (3, "reordered")


def test_an_inserted_entry_is_named_even_when_its_own_hash_is_right() -> None:
    entries = chained("acme", 5)
    intruder = forge("acme", 3, entries[1].hash)
    moved = [dataclasses.replace(e, seq=e.seq + 1) for e in entries[2:]]
    problem = verify_chain([*entries[:2], intruder, *moved])
    assert problem is not None
    assert (problem.seq, problem.kind) == (3, "inserted")
    assert problem.reason == "entry 3 was inserted: entry 4 links to entry 2, not to it"
    first = forge("acme", 1, GENESIS_HASH)
    problem = verify_chain([first, *(dataclasses.replace(e, seq=e.seq + 1) for e in entries)])
    assert problem is not None
    assert (problem.seq, problem.kind) == (1, "inserted")


def test_swapped_entries_are_found_at_the_first_of_them() -> None:
    entries = chained("acme", 6)
    third, fifth = entries[2], entries[4]
    entries[2] = dataclasses.replace(fifth, seq=3)
    entries[4] = dataclasses.replace(third, seq=5)
    problem = verify_chain(entries)
    assert problem is not None
    assert (problem.seq, problem.kind) == (3, "reordered")
    adjacent = chained("acme", 4)
    adjacent[1], adjacent[2] = adjacent[2], adjacent[1]
    problem = verify_chain(adjacent)
    assert problem is not None
    assert (problem.seq, problem.kind) == (2, "removed")


def test_a_repeated_seq_and_a_foreign_tenant_are_found() -> None:
    entries = chained("acme", 3)
    problem = verify_chain([*entries, entries[2]])
    assert problem is not None
    assert (problem.seq, problem.kind) == (3, "reordered")
    other = chained("globex", 3)
    problem = verify_chain([*entries[:2], other[2]], tenant="acme")
    assert problem is not None
    assert (problem.seq, problem.kind) == (3, "foreign")
    problem = verify_chain(other, tenant="acme")
    assert problem is not None
    assert (problem.seq, problem.kind) == (1, "foreign")


def test_a_first_entry_that_does_not_start_the_chain() -> None:
    entries = chained("acme", 2)
    entries[0] = rehash(dataclasses.replace(entries[0], prev_hash="a" * 64))
    problem = verify_chain(entries)
    assert problem is not None
    assert (problem.seq, problem.kind) == (1, "unlinked")


def test_an_exported_record_reads_back_as_the_same_entry() -> None:
    from plan2flow.memory.audit_chain import entry_record

    entry = chained("acme", 1)[0]
    assert ChainEntry.from_dict(entry_record(entry)) == entry
    flat = {**entry_record(entry), "seq": "1", "detail": '{"seq": 1}'}
    assert ChainEntry.from_dict(flat) == entry
