"""A model behind an OpenAI-compatible chat-completions endpoint, over httpx, non-streaming.

Non-streaming because the usage block then always arrives, and a retry repeats one request.
Retries follow :mod:`.retrying`; the wait goes through ``sleep`` (the caller's clock) so that a
test measures what was asked, not how long it took. The budget is checked before every attempt.
The API key is read only from the environment variable the policy names.
"""

from __future__ import annotations

import dataclasses
import random
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from plan2flow.compiler.spec.escalation import LocalTier, RemoteTier
from plan2flow.observability import tracing

from .budget import Budget, cost_usd
from .errors import HostDenied, ModelCallFailed
from .outbound import Outbound
from .retrying import backoff, is_validation_error, server_delay, should_retry
from .wire import estimate_tokens, parse_response, request_body

Sleep = Callable[[float], None]


@dataclasses.dataclass(frozen=True)
class Completion:
    """One answer, what it cost, and how it was obtained."""

    content: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    estimated: bool
    """True when the server reported no usage and the tokens are estimated."""
    cost_usd: float
    attempts: int
    delays: tuple[float, ...]
    """The waits asked for before each retry, in seconds."""
    structured: bool
    """True when the answer was asked for as structured output (a JSON schema)."""


@dataclasses.dataclass
class ChatClient:
    """One tier's endpoint and its limits."""

    base_url: str
    model: str
    api_key: str | None = None
    timeout_s: float = 60.0
    connect_timeout_s: float = 5.0
    max_retries: int = 2
    max_retry_after_s: float = 60.0
    price_per_1k_tokens: float = 0.0
    max_tokens: int = 2048
    sleep: Sleep = time.sleep
    rng: random.Random = dataclasses.field(default_factory=random.Random)
    structured_output: bool = True
    """Whether to ask for a JSON schema; switched off for good once the server refuses one."""
    _http: httpx.Client | None = dataclasses.field(default=None, repr=False)

    def _connection(self) -> httpx.Client:
        """One connection pool for every call of this client (an httpx client costs about
        15 ms to create, mostly its TLS context): closed by :meth:`close`."""
        if self._http is None:
            timeout = httpx.Timeout(self.timeout_s, connect=self.connect_timeout_s)
            self._http = httpx.Client(timeout=timeout, trust_env=False, follow_redirects=False)
        return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @classmethod
    def for_remote(cls, tier: RemoteTier, environ: Mapping[str, str], **options: Any) -> ChatClient:
        key = None
        if tier.api_key_env is not None:
            key = environ.get(tier.api_key_env) or None
            if key is None:
                raise ModelCallFailed(
                    f"the environment variable {tier.api_key_env} (the API key) is not set",
                    attempts=0,
                )
        return cls(
            base_url=tier.base_url,
            model=tier.model,
            api_key=key,
            timeout_s=tier.timeout_s,
            connect_timeout_s=tier.connect_timeout_s,
            max_retries=tier.max_retries,
            max_retry_after_s=tier.max_retry_after_s,
            price_per_1k_tokens=tier.price_per_1k_tokens,
            max_tokens=tier.max_tokens,
            **options,
        )

    @classmethod
    def for_local(cls, tier: LocalTier, **options: Any) -> ChatClient:
        if tier.base_url is None:
            raise ValueError("a local tier without base_url is the template agent, not a model")
        return cls(
            base_url=tier.base_url,
            model=tier.model or "local",
            timeout_s=tier.timeout_s,
            max_retries=0,
            **options,
        )

    @property
    def url(self) -> str:
        return self.base_url.rstrip("/") + "/chat/completions"

    def complete(
        self,
        outbound: Outbound,
        *,
        temperature: float,
        budget: Budget,
        schema: dict[str, Any] | None = None,
    ) -> Completion:
        """One answer to ``outbound``; :class:`ModelCallFailed` when there is none."""
        if not outbound.approved or outbound.host != httpx.URL(self.base_url).host.lower():
            raise HostDenied("only messages made by the gateway for this host can be sent")
        use_schema = schema if self.structured_output else None
        attributes = {"gen_ai.request.model": self.model, "server.address": outbound.host}
        with tracing.span("escalation.call", attributes=attributes) as span:
            try:
                answer = self._attempts(outbound, temperature, budget, use_schema)
            except ModelCallFailed as failure:
                if use_schema is None or not failure.structured_output_refused:
                    raise
                self.structured_output = False  # prompt + validate from now on
                answer = self._attempts(outbound, temperature, budget, None)
            if span is not None:
                span.set_attribute("gen_ai.usage.input_tokens", answer.prompt_tokens)
                span.set_attribute("gen_ai.usage.output_tokens", answer.completion_tokens)
            return answer

    def _attempts(
        self,
        outbound: Outbound,
        temperature: float,
        budget: Budget,
        schema: dict[str, Any] | None,
    ) -> Completion:
        messages = outbound.as_messages()
        body = request_body(
            self.model, messages, temperature=temperature, max_tokens=self.max_tokens, schema=schema
        )
        prompt_estimate = estimate_tokens("".join(m["content"] for m in messages))
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        delays: list[float] = []
        client = self._connection()
        attempt = 0
        while True:
            budget.check(cost_usd(prompt_estimate + self.max_tokens, self.price_per_1k_tokens))
            last = attempt >= self.max_retries
            try:
                response = client.post(self.url, json=body, headers=headers)
            except httpx.TransportError as error:
                if last:
                    raise ModelCallFailed(
                        f"{type(error).__name__} after {attempt + 1} attempt(s): {error}",
                        attempts=attempt + 1,
                        delays=tuple(delays),
                    ) from None
                self._wait(backoff(attempt, self.rng), delays)
            else:
                if response.is_success:
                    completion = self._completion(
                        response, prompt_estimate, schema, attempt, delays
                    )
                    budget.charge(completion.cost_usd)
                    return completion
                self._after_error(response, schema, attempt, last, delays)
            attempt += 1

    def _after_error(
        self,
        response: httpx.Response,
        schema: dict[str, Any] | None,
        attempt: int,
        last: bool,
        delays: list[float],
    ) -> None:
        """Wait before the next attempt, or raise when there is none to make."""
        status, text = response.status_code, response.text
        refused = schema is not None and (
            status in {400, 422} or (status >= 500 and is_validation_error(text))
        )
        summary = f"HTTP {status} from {self.url}: {text[:200].strip()}"
        if refused or not should_retry(status, response.headers, text) or last:
            raise ModelCallFailed(
                f"{summary} (after {attempt + 1} attempt(s))",
                status=status,
                attempts=attempt + 1,
                delays=tuple(delays),
                structured_output_refused=refused,
            )
        asked = server_delay(response.headers)
        if asked is not None and asked > self.max_retry_after_s:
            raise ModelCallFailed(
                f"HTTP {status}: the server asks to wait {asked:g} s, more than "
                f"max_retry_after_s ({self.max_retry_after_s:g} s): escalating instead",
                status=status,
                attempts=attempt + 1,
                delays=tuple(delays),
                escalate=True,
            )
        self._wait(asked if asked is not None else backoff(attempt, self.rng), delays)

    def _wait(self, seconds: float, delays: list[float]) -> None:
        delays.append(seconds)
        self.sleep(seconds)

    def _completion(
        self,
        response: httpx.Response,
        prompt_estimate: int,
        schema: dict[str, Any] | None,
        attempt: int,
        delays: list[float],
    ) -> Completion:
        try:
            parsed = parse_response(response.json())
        except ValueError as error:
            raise ModelCallFailed(
                f"{self.url}: {error}", attempts=attempt + 1, delays=tuple(delays)
            ) from None
        content = parsed.choices[0].message.content or ""
        if parsed.usage is not None:
            prompt, completion, estimated = (
                parsed.usage.prompt_tokens,
                parsed.usage.completion_tokens,
                False,
            )
        else:
            prompt, completion, estimated = prompt_estimate, estimate_tokens(content), True
        return Completion(
            content=content,
            model=parsed.model or self.model,
            prompt_tokens=prompt,
            completion_tokens=completion,
            estimated=estimated,
            cost_usd=cost_usd(prompt + completion, self.price_per_1k_tokens),
            attempts=attempt + 1,
            delays=tuple(delays),
            structured=schema is not None,
        )
