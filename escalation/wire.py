"""The chat-completions wire format (OpenAI's, spoken by Ollama, llama.cpp, vLLM, LM Studio):
the request body, and the answer read back, non-streaming."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Message(_Model):
    role: str
    content: str | None = None


class Choice(_Model):
    message: Message
    finish_reason: str | None = None


class Usage(_Model):
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)


class ChatResponse(_Model):
    choices: list[Choice] = Field(min_length=1)
    model: str = ""
    usage: Usage | None = None


def request_body(
    model: str,
    messages: list[dict[str, str]],
    *,
    temperature: float,
    max_tokens: int,
    schema: dict[str, Any] | None,
) -> dict[str, Any]:
    """The JSON body of one non-streaming call; ``schema`` asks for structured output."""
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "temperature": temperature,
        "max_tokens": max_tokens,
        "stream": False,
    }
    if schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "answer", "schema": schema, "strict": True},
        }
    return body


def parse_response(data: Any) -> ChatResponse:
    """The answer of a 2xx response; ValueError when it is not a chat completion."""
    try:
        response = ChatResponse.model_validate(data)
    except ValidationError as error:
        raise ValueError(f"not a chat completion: {error.errors()[0]['msg']}") from None
    if response.choices[0].message.content is None:
        raise ValueError("not a chat completion: the first choice has no content")
    return response


def estimate_tokens(text: str) -> int:
    """A token count for a server that reports none: about 4 characters per token.

    >>> estimate_tokens(""), estimate_tokens("abcdefghi")
    (0, 3)
    """
    return (len(text) + 3) // 4
