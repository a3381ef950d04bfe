"""Reversible tokens for personal data, irreversible masks for secrets.

Each value found is replaced by a token such as ``«EMAIL_1»``; the same value always gets the
same token within a :class:`Vault`, so code that mentions it twice stays consistent. The vault
lives in memory only. Personal data comes back when an answer is restored; a secret never does:
where a model returns a secret's token as code, an environment lookup takes its place.
"""

from __future__ import annotations

import dataclasses
import io
import re
import tokenize
from collections import Counter
from collections.abc import Iterable, Sequence

from .detectors import SECRET, Detector, detectors, find_all
from .errors import RedactionFailed

_TOKEN = re.compile(r"«([A-Z][A-Z0-9_]*?)_(\d+)»")
_LOOSE = re.compile(r"[«»]")


@dataclasses.dataclass
class Vault:
    """The tokens of one escalation: token → value, and for secrets the variable to read."""

    values: dict[str, str] = dataclasses.field(default_factory=dict)
    env_names: dict[str, str] = dataclasses.field(default_factory=dict)
    _by_value: dict[tuple[str, str], str] = dataclasses.field(default_factory=dict)
    _counts: Counter[str] = dataclasses.field(default_factory=Counter)

    def token_for(self, entity: str, value: str, env_name: str | None = None) -> str:
        key = (entity, value)
        if key not in self._by_value:
            self._counts[entity] += 1
            token = f"«{entity}_{self._counts[entity]}»"
            self._by_value[key] = token
            self.values[token] = value
            if entity == SECRET:
                self.env_names[token] = env_name or f"PLAN2FLOW_SECRET_{self._counts[entity]}"
        return self._by_value[key]

    def counts(self) -> dict[str, int]:
        """How many distinct values of each entity type were replaced (never the values)."""
        return dict(sorted(self._counts.items()))

    def names(self) -> set[str]:
        """The entity names this vault has tokens for."""
        return set(self._counts)


class Redactor:
    """Finds what must not leave the machine and replaces it, for one policy."""

    def __init__(self, entities: Iterable[str], patterns: Sequence[tuple[str, str]]) -> None:
        self._detectors: list[Detector] = detectors(entities, patterns)

    def redact(self, text: str, vault: Vault) -> str:
        """``text`` with every finding replaced by its token. A text that already holds
        token-shaped characters is refused: its restoration could not be told apart."""
        if _LOOSE.search(text):
            raise RedactionFailed("the text already holds '«' or '»', which tokens are made of")
        parts: list[str] = []
        last = 0
        for finding in find_all(text, self._detectors):
            parts.append(text[last : finding.start])
            parts.append(
                vault.token_for(finding.entity, text[finding.start : finding.end], finding.env_name)
            )
            last = finding.end
        parts.append(text[last:])
        return "".join(parts)


def restore(text: str, vault: Vault, *, require: Iterable[str] = ()) -> str:
    """An answer with personal data put back and each secret's token replaced by an
    environment lookup. Tokens that are unknown, altered or missing from ``require`` raise
    :class:`RedactionFailed`: such an answer goes to a person, never silently through."""
    missing = sorted(token for token in require if token not in text)
    if missing:
        raise RedactionFailed(f"{len(missing)} token(s) did not come back in the answer")
    for match in _TOKEN.finditer(text):
        if match.group() not in vault.values:
            raise RedactionFailed(f"the answer holds a token that was never sent: {match.group()}")
    rest = _TOKEN.sub(" ", text)
    if _LOOSE.search(rest):
        raise RedactionFailed("the answer holds an altered token")
    names = "|".join(re.escape(name) for name in sorted(vault.names()))
    if names and re.search(rf"\b(?:{names})_\d+\b", rest):
        raise RedactionFailed("the answer holds a token without its marks")
    text = _secrets_as_lookups(text, vault)
    for token, value in vault.values.items():
        if token not in vault.env_names:
            text = text.replace(token, value)
    return text


_MARKER = "__plan2flow_masked_secret__"


def _secrets_as_lookups(text: str, vault: Vault) -> str:
    """A secret's token as a whole string literal, or as an expression, becomes
    ``os.environ["NAME"]``; inside other text it cannot be placed and is refused."""
    for token, name in vault.env_names.items():
        lookup = f'os.environ["{name}"]'
        text = re.sub(rf"(['\"]){re.escape(token)}\1", lookup.replace("\\", r"\\"), text)
        if token not in text:
            continue
        probe = text.replace(token, _MARKER)
        if _inside_strings(probe):
            raise RedactionFailed("a masked secret came back inside a string")
        text = probe.replace(_MARKER, lookup)
    return text


def _inside_strings(code: str) -> bool:
    """Whether the marker is in a string or a comment (or the code does not tokenize, so no
    place is known to be safe)."""
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    except (tokenize.TokenError, SyntaxError):
        return True
    return any(
        _MARKER in token.string
        for token in tokens
        if token.type in {tokenize.STRING, tokenize.COMMENT}
        or tokenize.tok_name[token.type].startswith("FSTRING")
    )
