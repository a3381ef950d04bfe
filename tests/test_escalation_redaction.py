"""The redaction gateway: nothing of a corpus of personal data and secrets reaches a real server
on 127.0.0.1; tokens are stable and come back; secrets never do; hosts are denied by default;
every failure is closed."""

from __future__ import annotations

from pathlib import Path

import pytest
from openai_server import Reply, Waits, fake_openai

from plan2flow.compiler.spec.escalation import Redaction
from plan2flow.escalation import ChatClient, Gateway, HostDenied, RedactionFailed
from plan2flow.escalation.budget import Budget
from plan2flow.escalation.detectors import detectors, find_all, is_high_entropy
from plan2flow.escalation.gateway import local_outbound
from plan2flow.escalation.redaction import Redactor, Vault, restore

DATA = Path(__file__).parent / "data"
CORPUS = (DATA / "redaction-corpus.txt").read_text(encoding="utf-8")
VALUES = (DATA / "redaction-corpus.values").read_text(encoding="utf-8").splitlines()
ALL = ["email", "ip_address", "phone_number"]


def test_no_value_of_the_corpus_reaches_the_server() -> None:
    gateway = Gateway(Redaction(), ["127.0.0.1"])
    with fake_openai([Reply(content="ok")]) as server:
        outbound = gateway.outbound(server.url, [("system", "be brief"), ("user", CORPUS)])
        ChatClient(server.url, "m", sleep=Waits()).complete(
            outbound, temperature=0.2, budget=Budget(0)
        )
    (request,) = server.requests
    raw = request.raw.decode("utf-8")
    sent = request.json["messages"][1]["content"]
    assert VALUES and all(value not in raw and value not in sent for value in VALUES)
    assert "«EMAIL_1»" in sent and "«SECRET_9»" in sent
    assert gateway.counts == {"EMAIL": 2, "IP_ADDRESS": 4, "PHONE_NUMBER": 4, "SECRET": 9}


def test_code_that_only_looks_like_data_is_left_alone() -> None:
    redacted = Redactor(ALL, []).redact(CORPUS, Vault())
    for kept in ("items[::2]", "12:30:45", "2024-01-15", "version 1.2.3", "timeout = 30"):
        assert kept in redacted


def test_the_same_value_gets_the_same_token() -> None:
    vault = Vault()
    redacted = Redactor(ALL, []).redact(CORPUS, vault)
    assert redacted.count("«EMAIL_1»") == 2 and redacted.count("«IP_ADDRESS_2»") == 2
    assert vault.values["«EMAIL_1»"] == "ada.lovelace@example.com"


def test_personal_data_comes_back_and_secrets_become_environment_lookups() -> None:
    vault = Vault()
    Redactor(ALL, []).redact(CORPUS, vault)
    answer = 'return ("«EMAIL_1»", «SECRET_1», \'«SECRET_2»\', «SECRET_5», "«IP_ADDRESS_1»")'
    assert restore(answer, vault) == (
        'return ("ada.lovelace@example.com", os.environ["OPENAI_API_KEY"], '
        'os.environ["DB_PASSWORD"], os.environ["PLAN2FLOW_SECRET_5"], "192.168.10.20")'
    )


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ('return "key: «SECRET_1»"', "secret came back inside a string"),
        ("x = 1  # «SECRET_1»", "secret came back inside a string"),
        ("return «SECRET_1»(", "secret came back inside a string"),
        ("return «EMAIL_7»", "never sent"),
        ("return «EMAIL_1", "altered token"),
        ("return EMAIL_1", "without its marks"),
        ("return 1", "did not come back"),
    ],
)
def test_a_token_that_does_not_come_back_intact_fails(answer: str, problem: str) -> None:
    vault = Vault()
    Redactor(ALL, []).redact("mail ada@example.com\nAPI_KEY=sk-abcdefghijklmnopqrst", vault)
    with pytest.raises(RedactionFailed, match=problem):
        restore(answer, vault, require=["«EMAIL_1»"] if "come back" in problem else ())


def test_text_already_holding_token_marks_is_refused_and_nothing_is_sent() -> None:
    gateway = Gateway(Redaction(), ["127.0.0.1"])
    with (
        fake_openai([Reply(content="ok")]) as server,
        pytest.raises(RedactionFailed, match="already holds"),
    ):
        gateway.outbound(server.url, [("user", "see «EMAIL_1»")])
    assert server.requests == []


def test_hosts_are_denied_by_default() -> None:
    with pytest.raises(HostDenied, match=r"'api\.example\.com' is not in"):
        Gateway(Redaction(), []).outbound("https://api.example.com/v1", [("user", "hi")])
    allowed = Gateway(Redaction(), ["API.Example.com"]).outbound("https://api.example.com/v1", [])
    assert allowed.host == "api.example.com" and allowed.approved and allowed.redacted


def test_a_local_tier_reaches_only_this_machine_and_sends_unredacted() -> None:
    local = local_outbound("http://[::1]:8080/v1", [("user", "mail ada@example.com")])
    assert local.host == "::1" and not local.redacted
    assert local.messages == (("user", "mail ada@example.com"),)
    with pytest.raises(HostDenied, match="only call this machine"):
        local_outbound("http://10.0.0.7:8080/v1", [])


def test_the_entity_allow_list_and_project_patterns() -> None:
    text = "ada@example.com +44 20 7946 0958 10.0.0.7 CUST-123456 sk-abcdefghijklmnopqrstu"
    vault = Vault()
    redacted = Redactor(["email"], [("CUSTOMER_ID", "CUST-[0-9]{6}")]).redact(text, vault)
    assert redacted == "«EMAIL_1» +44 20 7946 0958 10.0.0.7 «CUSTOMER_ID_1» «SECRET_1»"
    assert restore("«CUSTOMER_ID_1»", vault) == "CUST-123456"


def test_high_entropy_needs_letters_digits_and_bits() -> None:
    assert is_high_entropy("Zq3mN8vR2tY6wP1xK9cL4hJ7")
    assert not is_high_entropy("HTTPServerRequestHandler2")
    assert not is_high_entropy("abcdefghijklmnopqrstuvwxyz")
    assert not is_high_entropy("0123456789abcdef0123")  # hex shorter than 32


def test_overlapping_findings_keep_the_first_detector() -> None:
    text = "API_TOKEN=ghp_4Ff8Kd2Lm9Qx7Rt1Vz3Wb6Yn0Pc5Hs8Je2Ua"
    (finding,) = find_all(text, detectors(ALL, []))
    assert (finding.entity, finding.env_name) == ("SECRET", "API_TOKEN")


def test_addresses_out_of_range_are_not_addresses() -> None:
    assert find_all("999.1.1.1 and 1::2", detectors(ALL, [])) == []
