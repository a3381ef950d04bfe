"""`plan2flow events ...`: tail, replay, dlq, flush and stats, in-process (CliRunner) and as real
processes, against the machine's NATS (private streams per test) and without it."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import Result
from events_nats import (
    BINARY,
    delete_streams,
    free_port,
    need_binary,
    need_shared_nats,
    private_settings,
    reachable,
    wait_until,
)
from typer.testing import CliRunner

from plan2flow.cli import app
from plan2flow.cli.events_commands import parse_since
from plan2flow.events import Event, RunContext, process_bus
from plan2flow.events.consume import run_consumer
from plan2flow.events.jetstream import JetStreamBus, NatsSettings, connect

runner = CliRunner()
PLAN2FLOW = Path(sys.executable).with_name("plan2flow")
NATS_ONLY = [
    ["events", "replay", "--from-seq", "1"],
    ["events", "dlq", "list"],
    ["events", "dlq", "show", "1"],
    ["events", "dlq", "retry"],
    ["events", "dlq", "purge", "--all"],
    ["events", "flush"],
    ["events", "stats"],
]


def _ok(result: Result) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output


def _run(taskprefix: str = "t", n: int = 3, run: str = "r1") -> list[Event]:
    context = RunContext(tenant="acme", plan="etl", graphhash="sha256:ab", flowrunid=run)
    return [context.task("started", f"{taskprefix}{i}", attempt=1) for i in range(n)]


def _env(settings: NatsSettings | None, home: Path) -> dict[str, str]:
    env = {
        "PLAN2FLOW_HOME": str(home),
        "PLAN2FLOW_EVENTS_URL": "",
        "PLAN2FLOW_EVENTS_ROOT": "",
        "PLAN2FLOW_EVENTS_STREAM": "",
        "PLAN2FLOW_EVENTS_DLQ_STREAM": "",
        "PLAN2FLOW_EVENTS_ADVISORY_STREAM": "",
    }
    if settings is not None:
        env.update(
            PLAN2FLOW_EVENTS_URL=",".join(settings.servers),
            PLAN2FLOW_EVENTS_ROOT=settings.root,
            PLAN2FLOW_EVENTS_STREAM=settings.stream,
            PLAN2FLOW_EVENTS_DLQ_STREAM=settings.dlq_stream,
            PLAN2FLOW_EVENTS_ADVISORY_STREAM=settings.advisory_stream,
        )
    return env


def _process_env(extra: dict[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLAN2FLOW_EVENTS")}
    env.update({k: v for k, v in extra.items() if v})
    return env


@pytest.fixture
def nats_env(tmp_path: Path) -> Iterator[tuple[NatsSettings, dict[str, str]]]:
    """Private streams on the machine's NATS, their settings as the environment, and the
    spool in this test's home; the streams are deleted afterwards."""
    url = need_shared_nats()
    home = tmp_path / "home"
    settings = private_settings(url, home / "events")
    yield settings, _env(settings, home)
    delete_streams(settings)


def _publish(settings: NatsSettings, events: list[Event]) -> None:
    bus = JetStreamBus(settings)
    try:
        assert [bus.publish(e) for e in events] == ["published"] * len(events)
    finally:
        bus.close()


# --- without NATS ----------------------------------------------------------------------------


@pytest.mark.parametrize("argv", NATS_ONLY, ids=lambda a: " ".join(a[1:]))
def test_nats_only_commands_say_they_need_nats(argv: list[str], tmp_path: Path) -> None:
    result = runner.invoke(app, argv, env=_env(None, tmp_path))
    _ok(result)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.startswith("plan2flow: ")
    assert "needs the NATS bus: set PLAN2FLOW_EVENTS_URL" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_tail_without_nats_follows_this_process_and_says_so(tmp_path: Path) -> None:
    context = RunContext(tenant="acme", plan="etl", graphhash="sha256:ab", flowrunid="r1")
    stop = threading.Event()

    def keep_publishing() -> None:  # until the tail has subscribed and taken its events
        index = 0
        deadline = time.monotonic() + 30
        while not stop.is_set() and time.monotonic() < deadline:
            process_bus().publish(context.task("completed", f"t{index}", duration_seconds=0.5))
            process_bus().publish(context.flow("started", tasks=1))  # not matched
            index += 1
            time.sleep(0.01)

    thread = threading.Thread(target=keep_publishing)
    thread.start()
    try:
        result = runner.invoke(
            app,
            ["events", "tail", "plan2flow.acme.*.task.>", "--limit", "3"],
            env=_env(None, tmp_path),
        )
    finally:
        stop.set()
        thread.join()
    _ok(result)
    assert result.exit_code == 0
    assert "without NATS only the in-process events of runs started by this process" in (
        result.stderr
    )
    lines = result.stdout.splitlines()
    assert len(lines) == 3
    for line in lines:
        assert "  task.completed  acme/etl  run=r1  task=t" in line
        assert line.endswith('{"duration_seconds":0.5}')

    json_result = runner.invoke(
        app,
        ["events", "tail", "--format", "json", "--timeout", "0.1"],
        env=_env(None, tmp_path),
    )
    _ok(json_result)
    assert json_result.exit_code == 0 and json_result.stdout == ""


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["events", "tail", "plan2flow.>.x"], "'>' may only be the last token"),
        (["events", "replay", "a..b", "--from-seq", "1"], "pattern 'a..b'"),
        (["events", "replay"], "exactly one of --from-seq N and --since TIME"),
        (
            ["events", "replay", "--from-seq", "1", "--since", "1h"],
            "exactly one of --from-seq N and --since TIME",
        ),
        (["events", "replay", "--since", "yesterday"], "--since 'yesterday': not a time"),
        (["events", "replay", "--since", "2026-11-30T09:00:00"], "has no UTC offset"),
        (["events", "dlq", "purge"], "needs SEQ... or --all"),
        (["events", "dlq", "purge", "3", "--all"], "needs SEQ... or --all"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(
    argv: list[str], message: str, tmp_path: Path
) -> None:
    result = runner.invoke(app, argv, env=_env(None, tmp_path))
    _ok(result)
    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.splitlines()) == 1
    assert result.stdout == ""


def test_since_takes_iso_times_with_an_offset_and_durations_ago() -> None:
    now = dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)
    assert parse_since("90s", now) == now - dt.timedelta(seconds=90)
    assert parse_since("2d", now) == now - dt.timedelta(days=2)
    assert parse_since("2026-11-30T10:00:00+02:00", now) == dt.datetime(
        2026, 11, 30, 8, tzinfo=dt.UTC
    )
    with pytest.raises(ValueError, match="no UTC offset"):
        parse_since("2026-11-30")


# --- errors of the bus -----------------------------------------------------------------------


@pytest.mark.slow
def test_an_unreachable_bus_exits_3(tmp_path: Path) -> None:
    env = _env(private_settings(f"nats://127.0.0.1:{free_port()}", tmp_path), tmp_path)
    for argv in (["events", "stats"], ["events", "replay", "--since", "1h"]):
        result = runner.invoke(app, argv, env=env)
        _ok(result)
        assert result.exit_code == 3, result.output
        assert result.stderr.startswith("plan2flow: no NATS server answers at nats://127.0.0.1:")
        assert len(result.stderr.splitlines()) == 1


def test_a_server_without_jetstream_exits_4(tmp_path: Path) -> None:
    need_binary()
    port = free_port()
    server = subprocess.Popen(
        [BINARY, "-a", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        url = f"nats://127.0.0.1:{port}"
        wait_until(lambda: reachable(url), 20, "nats-server without JetStream")
        result = runner.invoke(
            app, ["events", "stats"], env=_env(private_settings(url, tmp_path), tmp_path)
        )
    finally:
        server.kill()
        server.wait(10)
    _ok(result)
    assert result.exit_code == 4, result.output
    assert "JetStream is not enabled on the NATS server" in result.stderr


# --- with NATS -------------------------------------------------------------------------------


@pytest.mark.slow
def test_replay_prints_envelopes_and_stream_positions(
    nats_env: tuple[NatsSettings, dict[str, str]],
) -> None:
    settings, env = nats_env
    events = _run(n=4)
    _publish(settings, events)
    as_json = runner.invoke(app, ["events", "replay", "--from-seq", "2", "-f", "json"], env=env)
    _ok(as_json)
    assert as_json.exit_code == 0, as_json.output
    assert as_json.stdout.splitlines() == [e.to_json().decode() for e in events[1:]]

    as_text = runner.invoke(app, ["events", "replay", "--since", "10m"], env=env)
    _ok(as_text)
    lines = as_text.stdout.splitlines()
    assert [line.split("  ")[0] for line in lines] == ["1", "2", "3", "4"]
    assert "task.started  acme/etl  run=r1  task=t3  attempt=1" in lines[3]

    later = runner.invoke(
        app,
        ["events", "replay", "plan2flow.*.*.flow.*", "--since", "2026-01-01T00:00:00Z"],
        env=env,
    )
    _ok(later)
    assert later.exit_code == 0 and later.stdout == ""


def test_replay_reports_a_message_that_is_not_an_event_on_stderr(
    nats_env: tuple[NatsSettings, dict[str, str]],
) -> None:
    settings, env = nats_env
    _publish(settings, _run(n=1))

    async def garbage() -> None:
        nc = await connect(settings)
        await nc.jetstream().publish(settings.wire("plan2flow.acme.etl.task.started"), b"{x")
        await nc.close()

    asyncio.run(garbage())
    result = runner.invoke(app, ["events", "replay", "--from-seq", "1", "-f", "json"], env=env)
    _ok(result)
    assert result.exit_code == 0
    assert len(result.stdout.splitlines()) == 1
    assert "plan2flow: seq 2 " in result.stderr and "not an event: not JSON" in result.stderr


def test_stats_and_flush(nats_env: tuple[NatsSettings, dict[str, str]]) -> None:
    settings, env = nats_env
    _publish(settings, _run(n=2))
    result = runner.invoke(app, ["events", "stats", "--format", "json"], env=env)
    _ok(result)
    numbers = json.loads(result.stdout)
    assert numbers["stream"]["name"] == settings.stream
    assert numbers["stream"]["messages"] == 2 and numbers["dlq"]["messages"] == 0
    assert numbers["spool"]["pending"] == 0
    text = runner.invoke(app, ["events", "stats"], env=env)
    _ok(text)
    assert f"stream {settings.stream}: 2 messages" in text.stdout
    flushed = runner.invoke(app, ["events", "flush"], env=env)
    _ok(flushed)
    assert flushed.exit_code == 0
    assert flushed.stdout == "published 0, duplicates 0, corrupt 0, remaining 0\n"


def test_flush_publishes_the_spool_of_a_run_that_had_no_bus(
    nats_env: tuple[NatsSettings, dict[str, str]],
) -> None:
    from plan2flow.events.spool import Spool

    settings, env = nats_env
    events = _run(n=5)
    spool = Spool(settings.spool_dir)
    for event in events:
        assert spool.append(event)
    result = runner.invoke(app, ["events", "flush"], env=env)
    _ok(result)
    assert result.exit_code == 0, result.output
    assert result.stdout == "published 5, duplicates 0, corrupt 0, remaining 0\n"
    replayed = runner.invoke(app, ["events", "replay", "--from-seq", "1", "-f", "json"], env=env)
    assert replayed.stdout.splitlines() == [e.to_json().decode() for e in events]


@pytest.mark.slow
def test_dlq_list_show_retry_purge(nats_env: tuple[NatsSettings, dict[str, str]]) -> None:
    settings, env = nats_env
    poison, good = _run("p", 1)[0], _run("g", 1)[0]
    _publish(settings, [poison, good])

    def handler(event: Event, delivery: object) -> None:
        if event.taskid == "p0":
            raise RuntimeError("cannot handle it")

    run_consumer(settings, "worker", ">", handler, ack_wait=5, max_deliver=2, idle_exit=0.5)

    listed = runner.invoke(app, ["events", "dlq", "list", "--format", "json"], env=env)
    _ok(listed)
    letters = json.loads(listed.stdout)
    assert [(x["reason"], x["event_id"], x["deliveries"]) for x in letters] == [
        ("handler", poison.id, 2)
    ]
    seq = letters[0]["seq"]
    text = runner.invoke(app, ["events", "dlq", "list"], env=env)
    assert text.stdout.startswith(f"{seq}  handler  consumer=worker  deliveries=2  seq=1  ")
    assert text.stdout.rstrip().endswith("RuntimeError: cannot handle it")
    assert text.stderr == "1 dead letter(s)\n"

    shown = runner.invoke(app, ["events", "dlq", "show", str(seq)], env=env)
    _ok(shown)
    assert shown.exit_code == 0
    assert "reason: handler\n" in shown.stdout
    assert f"data: {poison.to_json().decode()}\n" in shown.stdout
    as_json = runner.invoke(app, ["events", "dlq", "show", str(seq), "-f", "json"], env=env)
    assert json.loads(as_json.stdout)["data"] == poison.to_json().decode()
    missing = runner.invoke(app, ["events", "dlq", "show", "999"], env=env)
    _ok(missing)
    assert missing.exit_code == 1
    assert missing.stderr == f"plan2flow: no dead letter 999 in {settings.dlq_stream}\n"

    retried = runner.invoke(app, ["events", "dlq", "retry", str(seq)], env=env)
    _ok(retried)
    assert retried.exit_code == 0 and retried.stdout == f"{seq} → stream seq 3\n"
    assert (
        json.loads(runner.invoke(app, ["events", "dlq", "list", "-f", "json"], env=env).stdout)
        == []
    )

    # File it again, then purge everything.
    run_consumer(settings, "other", ">", handler, ack_wait=5, max_deliver=1, idle_exit=0.5)
    purged = runner.invoke(app, ["events", "dlq", "purge", "--all"], env=env)
    _ok(purged)
    assert purged.exit_code == 0 and purged.stdout == "2 dead letter(s) removed\n"
    none = runner.invoke(app, ["events", "dlq", "purge", "1", "2"], env=env)
    assert none.exit_code == 0 and none.stdout == "0 dead letter(s) removed\n"


# --- real processes --------------------------------------------------------------------------


def _spawn(argv: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """`plan2flow ARGV...` started as a script's background job is: with SIGINT ignored (the
    shell's `trap "" INT`), which a follower must still answer."""
    return subprocess.Popen(
        ["sh", "-c", 'trap "" INT; exec "$0" "$@"', str(PLAN2FLOW), *argv],
        env=_process_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def _reap(child: subprocess.Popen[str]) -> None:
    """Kill a child still running, wait for it and close its pipes: a pipe left to the garbage
    collector warns in whichever test happens to run next."""
    if child.poll() is None:
        child.kill()
    child.wait(60)
    for stream in (child.stdout, child.stderr):
        if stream is not None:
            stream.close()


@pytest.mark.slow
def test_tail_process_follows_nats_and_ctrl_c_exits_130_quietly(
    nats_env: tuple[NatsSettings, dict[str, str]],
) -> None:
    settings, env = nats_env
    child = _spawn(["events", "tail", "plan2flow.acme.>", "--format", "json"], env)
    context = RunContext(tenant="acme", plan="etl", graphhash="sha256:ab", flowrunid="live")
    bus = JetStreamBus(settings)
    received: list[str] = []

    def read() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            received.append(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        index = 0
        deadline = time.monotonic() + 180
        while len(received) < 3:  # the tail shows events stored after it subscribed
            assert time.monotonic() < deadline, "the tail printed nothing within 180s"
            assert child.poll() is None, child.stderr.read() if child.stderr else ""
            bus.publish(context.task("started", f"t{index}"))
            bus.publish(RunContext("globex", "etl", "sha256:ab", "x").flow("started"))
            bus.flush(5)
            index += 1
            time.sleep(0.05)
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=180)
    finally:
        bus.close()
        _reap(child)
    assert child.returncode == 130
    assert stderr == ""
    events = [json.loads(line) for line in received]
    assert {e["tenant"] for e in events} == {"acme"}
    ids = [int(e["taskid"][1:]) for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


@pytest.mark.slow
def test_tail_whose_reader_leaves_exits_0_quietly(
    nats_env: tuple[NatsSettings, dict[str, str]],
) -> None:
    """`plan2flow events tail | head -1`: once the reader has gone, the next line cannot be
    written; tail ends with status 0 and says nothing, like other Unix tools."""
    settings, env = nats_env
    child = _spawn(["events", "tail", "--format", "json"], env)
    context = RunContext(tenant="acme", plan="etl", graphhash="sha256:ab", flowrunid="head")
    bus = JetStreamBus(settings)
    first: list[str] = []
    reader = threading.Thread(
        target=lambda: first.append(child.stdout.readline() if child.stdout else ""), daemon=True
    )
    reader.start()
    try:
        index = 0
        deadline = time.monotonic() + 180
        while reader.is_alive():  # until the first line is read
            assert time.monotonic() < deadline, "the tail printed nothing within 180s"
            assert child.poll() is None, child.stderr.read() if child.stderr else ""
            bus.publish(context.task("started", f"t{index}"))
            bus.flush(5)
            index += 1
            reader.join(0.05)
        assert child.stdout is not None
        child.stdout.close()  # the reader leaves, as `head -1` does
        while child.poll() is None:  # the tail notices when it writes the next line
            assert time.monotonic() < deadline, "the tail went on after its reader left"
            bus.publish(context.task("started", f"t{index}"))
            bus.flush(5)
            index += 1
            time.sleep(0.05)
        assert child.stderr is not None
        stderr = child.stderr.read()
    finally:
        bus.close()
        _reap(child)
    assert json.loads(first[0])["tenant"] == "acme"
    assert child.returncode == 0, stderr
    assert stderr == ""


@pytest.mark.slow
def test_tail_process_without_nats_warns_and_ctrl_c_exits_130(tmp_path: Path) -> None:
    child = _spawn(["events", "tail"], {"PLAN2FLOW_HOME": str(tmp_path)})
    try:
        assert child.stderr is not None
        first = child.stderr.readline()  # printed before it starts following
        assert "without NATS only the in-process events of runs started by this process" in first
        child.send_signal(signal.SIGINT)
        stdout, stderr = child.communicate(timeout=180)
    finally:
        _reap(child)
    assert child.returncode == 130
    assert stdout == "" and stderr == ""


@pytest.mark.slow
def test_replay_process_without_nats_exits_2(tmp_path: Path) -> None:
    child = _spawn(["events", "replay", "--since", "1h"], {"PLAN2FLOW_HOME": str(tmp_path)})
    stdout, stderr = child.communicate(timeout=60)
    assert child.returncode == 2 and stdout == ""
    assert stderr == (
        "plan2flow: replay needs the NATS bus: set PLAN2FLOW_EVENTS_URL (nats://host:4222); "
        "the in-process bus keeps no history\n"
    )


@pytest.mark.slow
def test_replay_process_with_nats_prints_json_lines(
    nats_env: tuple[NatsSettings, dict[str, str]],
) -> None:
    settings, env = nats_env
    events = _run(n=3)
    _publish(settings, events)
    child = _spawn(["events", "replay", "--from-seq", "1", "--format", "json"], env)
    stdout, stderr = child.communicate(timeout=60)
    assert child.returncode == 0, stderr
    assert stdout.splitlines() == [e.to_json().decode() for e in events]
