"""What the escalation chain costs besides the model: per tier, per variant, per megabyte.

Usage::

    python bench/escalation.py [--calls 50] [--variants 2] [--corpus-mib 4]

Against the scripted OpenAI-compatible server of the tests (``tests/openai_server.py``, a real
HTTP server on 127.0.0.1 that answers at once), so that what is measured is plan2flow's part.
Prints one JSON line:

* ``http_floor_ms``: the median of ``--calls`` bare httpx POSTs of the same body on one
  ``httpx.Client`` (as a tier's client keeps one for all its calls): the floor no client goes
  below;
* ``local_call_ms`` and ``remote_call_ms``: the median of one call of the local tier (the prompt
  as it is) and of the remote tier (host check and redaction of the prompt, the call, the answer
  parsed, the budget checked and charged); ``local_added_ms`` and ``remote_added_ms`` are each
  minus the floor, and ``redaction_ms`` the gateway's part alone;
* ``scoring_s_per_variant``: the median seconds to measure one variant of a small module with
  its tests, every signal (``with_mypy``) and every signal but mypy (``without_mypy``): pytest,
  import, mypy and ruff each run as a child process;
* ``chain_s``: one whole escalation (``--variants`` remote variants, scored, one kept);
* ``redaction_mib_s`` / ``restore_mib_s``: MiB per second of the redaction corpus
  (``tests/data/redaction-corpus.txt``, repeated to ``--corpus-mib``), redacted with a fresh vault,
  and of restoring an answer of the same size.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from openai_server import Reply, Waits, bodies, fake_openai  # noqa: E402

from plan2flow.agents.code_generator import render_component  # noqa: E402
from plan2flow.compiler.spec.escalation import (  # noqa: E402
    EscalationPolicy,
    Redaction,
    RemoteTier,
    Tier,
)
from plan2flow.escalation import ChatClient, CodeTask, Gateway  # noqa: E402
from plan2flow.escalation.budget import Budget  # noqa: E402
from plan2flow.escalation.chain import Surroundings, run_chain  # noqa: E402
from plan2flow.escalation.gateway import local_outbound  # noqa: E402
from plan2flow.escalation.prompt import SYSTEM, messages  # noqa: E402
from plan2flow.escalation.redaction import Redactor, Vault, restore  # noqa: E402
from plan2flow.escalation.signals import measure  # noqa: E402

CORPUS = ROOT / "tests" / "data" / "redaction-corpus.txt"
SPEC: dict[str, Any] = {
    "module": "greeter",
    "description": "Greetings; questions to ada@example.com.",
    "imports": [],
    "dataclasses": [],
    "functions": [
        {
            "name": "greet",
            "signature": "(name: str) -> str",
            "docstring": "Greet someone.",
            "body": None,
            "examples": [
                {"call": "greet('Ada')", "returns": "'Hello, Ada!'"},
                {"call": "greet('Bo')", "returns": "'Hello, Bo!'"},
            ],
        }
    ],
}
ANSWER = bodies({"greet": "return f'Hello, {name}!'"})


def median_ms(work: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return round(statistics.median(times) * 1000, 3)


def render(spec: Any) -> dict[str, str]:
    return render_component(dict(spec), "greeter")[1]


def latency(calls: int) -> dict[str, float]:
    prompt = messages(SPEC, {})
    gateway = Gateway(Redaction(), ["127.0.0.1"])
    with fake_openai([Reply(content=ANSWER)]) as server:
        client = ChatClient(server.url, "bench", sleep=Waits())
        http = httpx.Client(trust_env=False)
        outbound = gateway.outbound(server.url, prompt, instructions=SYSTEM)
        body = {"model": "bench", "messages": outbound.as_messages(), "stream": False}

        def bare() -> None:
            http.post(server.url + "/chat/completions", json=body).json()

        def local() -> None:
            sent = local_outbound(server.url, prompt, instructions=SYSTEM)
            client.complete(sent, temperature=0.2, budget=Budget(0))

        def remote() -> None:
            sent = gateway.outbound(server.url, prompt, instructions=SYSTEM)
            client.complete(sent, temperature=0.2, budget=Budget(1.0))

        for work in (bare, local, remote):  # warm up
            work()
        timed: dict[str, list[float]] = {"bare": [], "local": [], "remote": []}
        for _ in range(calls):  # interleaved, so that drift spreads over all three
            for name, work in (("bare", bare), ("local", local), ("remote", remote)):
                timed[name].append(median_ms(work, 1))
        floor, local_ms, remote_ms = (
            round(statistics.median(timed[name]), 3) for name in ("bare", "local", "remote")
        )
        client.close()
        http.close()
    redaction = median_ms(lambda: gateway.outbound(server.url, prompt, instructions=SYSTEM), calls)
    return {
        "http_floor_ms": floor,
        "local_call_ms": local_ms,
        "remote_call_ms": remote_ms,
        "local_added_ms": round(local_ms - floor, 3),
        "remote_added_ms": round(remote_ms - floor, 3),
        "redaction_ms": redaction,
    }


def scoring(rounds: int) -> dict[str, float]:
    files = render(
        {**SPEC, "functions": [{**SPEC["functions"][0], "body": "return f'Hello, {name}!'"}]}
    )
    found: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, signals in (
            ("with_mypy", frozenset({"tests", "parses", "types", "lint"})),
            ("without_mypy", frozenset({"tests", "parses", "lint"})),
        ):
            seconds = []
            for index in range(rounds):
                directory = Path(scratch) / f"{name}-{index}"
                directory.mkdir()
                for file, text in files.items():
                    (directory / file).write_text(text, encoding="utf-8")
                started = time.perf_counter()
                measure(directory, "greeter", test_file="test_greeter.py", signals=signals)
                seconds.append(time.perf_counter() - started)
            found[name] = round(statistics.median(seconds), 3)
    return found


def chain(variants: int) -> float:
    with fake_openai([Reply(content=ANSWER)]) as server, tempfile.TemporaryDirectory() as work:
        policy = EscalationPolicy(
            threshold=0.5,
            variants=variants,
            tiers=[Tier(remote=RemoteTier(base_url=server.url, model="bench"))],
            allowed_hosts=["127.0.0.1"],
        )
        started = time.perf_counter()
        result = run_chain(
            CodeTask("bench.generate_code", SPEC, render),
            policy,
            Surroundings(Path(work), {}, Waits()),
        )
        assert result.outcome == "kept", result.reason
        return round(time.perf_counter() - started, 3)


def throughput(mib: float) -> dict[str, float]:
    text = CORPUS.read_text(encoding="utf-8")
    corpus = text * max(1, int(mib * 1024 * 1024 / len(text.encode())))
    size = len(corpus.encode()) / (1024 * 1024)
    redactor = Redactor(["email", "ip_address", "phone_number"], [])
    vault = Vault()
    started = time.perf_counter()
    redacted = redactor.redact(corpus, vault)
    redact_s = time.perf_counter() - started
    answer = "\n".join(
        f"x{i} = '{token}'" for i, token in enumerate(vault.values) if token not in vault.env_names
    )
    answer = (answer + "\n") * max(1, len(redacted) // max(1, len(answer)))
    started = time.perf_counter()
    restore(answer, vault)
    restore_s = time.perf_counter() - started
    return {
        "corpus_mib": round(size, 2),
        "redaction_mib_s": round(size / redact_s, 2),
        "restore_mib_s": round(len(answer.encode()) / (1024 * 1024) / restore_s, 2),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--variants", type=int, default=2)
    parser.add_argument("--corpus-mib", type=float, default=4.0)
    parser.add_argument("--scoring-rounds", type=int, default=3)
    args = parser.parse_args(argv)
    report: dict[str, Any] = {"calls": args.calls, "variants": args.variants}
    report.update(latency(args.calls))
    report["scoring_s_per_variant"] = scoring(args.scoring_rounds)
    report["chain_s"] = chain(args.variants)
    report.update(throughput(args.corpus_mib))
    print(json.dumps(report, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
