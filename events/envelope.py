"""The CloudEvents 1.0 envelope of every plan2flow event, the registry of event types and their
typed ``data``, and deterministic event ids.

An event is a :class:`Event`: the CloudEvents attributes (``specversion``, ``id``, ``source``,
``type``, ``subject``, ``time``, ``datacontenttype``, ``dataschema``, ``data``) plus the extension
attributes ``tenant``, ``plan``, ``graphhash``, ``flowrunid``, ``taskid`` and ``attempt``. Its
JSON form (:meth:`Event.to_json`) is the CloudEvents JSON format, so any CloudEvents consumer
reads it. The ``data`` of a registered type is validated by the type's pydantic model; a type
that this process has not registered (one a newer part added) keeps its ``data`` as plain JSON.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, model_validator

from plan2flow.events.errors import InvalidEvent
from plan2flow.events.subjects import check_label, label_for, split_type, subject_for

SPECVERSION = "1.0"
ENVELOPE_VERSION = "v1"
"""The version of plan2flow's envelope and payloads, in every event's ``dataschema``."""
ID_NAMESPACE = uuid.UUID("6d3c1f7e-52a4-5b8e-9a51-0c7f2b9e4d10")
"""The uuid5 namespace of deterministic event ids (fixed forever: ids are compared across runs)."""


class EventData(BaseModel):
    """The base of every typed ``data``: closed and frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class EventType:
    """A registered event type: its name, its data model, and how its id is derived.

    ``identity`` names the data fields that take part in a deterministic id, beside (tenant, plan,
    flow run, task, type, attempt); ``deterministic=False`` types (health probes) get random ids
    unless the caller passes one.
    """

    name: str
    data: type[EventData]
    deterministic: bool = True
    identity: tuple[str, ...] = ()


_REGISTRY: dict[str, EventType] = {}


def register_event_type(
    name: str,
    data: type[EventData],
    *,
    deterministic: bool = True,
    identity: tuple[str, ...] = (),
) -> EventType:
    """Register an event type (``plan2flow.<kind>.<event>``) with its data model.

    Registering the same name again with the same model is a no-op; with another model it is an
    error, so two parts can never disagree about a type.
    """
    split_type(name)
    for field in identity:
        if field not in data.model_fields:
            raise ValueError(f"identity field {field!r} is not a field of {data.__name__}")
    entry = EventType(name, data, deterministic, identity)
    existing = _REGISTRY.get(name)
    if existing is not None and existing != entry:
        raise ValueError(f"event type {name!r} is already registered with {existing.data.__name__}")
    _REGISTRY[name] = entry
    return entry


def event_type(name: str) -> EventType | None:
    """The registered type called ``name``, or None."""
    return _REGISTRY.get(name)


def event_types() -> list[str]:
    """The names of every registered type, sorted."""
    return sorted(_REGISTRY)


class Event(BaseModel):
    """One event in the CloudEvents 1.0 envelope, with plan2flow's extension attributes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    specversion: str = SPECVERSION
    id: str = Field(min_length=1)
    source: str = Field(min_length=1)
    type: str
    subject: str
    time: dt.datetime
    datacontenttype: str = "application/json"
    dataschema: str | None = None
    tenant: str
    plan: str
    graphhash: str | None = None
    flowrunid: str | None = None
    taskid: str | None = None
    attempt: int | None = Field(default=None, ge=0)
    data: SerializeAsAny[EventData] | dict[str, Any] | None = None

    @model_validator(mode="before")
    @classmethod
    def _typed_data(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        entry = _REGISTRY.get(str(values.get("type")))
        data = values.get("data")
        if entry is not None and not isinstance(data, entry.data):
            values = {**values, "data": entry.data.model_validate(data or {})}
        return values

    @model_validator(mode="after")
    def _consistent(self) -> Event:
        if self.specversion != SPECVERSION:
            raise ValueError(f"specversion {self.specversion!r} is not {SPECVERSION!r}")
        check_label(self.tenant, "tenant")
        expected = subject_for(self.tenant, self.plan, self.type)
        if self.subject != expected:
            raise ValueError(f"subject {self.subject!r} should be {expected!r}")
        if self.time.tzinfo is None:
            raise ValueError("time must carry a UTC offset")
        return self

    @property
    def kind(self) -> str:
        """``task``, ``flow``, ``agent``, ``artifact``, …"""
        return split_type(self.type)[0]

    @property
    def name(self) -> str:
        """The event within its kind: ``started``, ``not_run``, …"""
        return split_type(self.type)[1]

    def to_dict(self) -> dict[str, Any]:
        """The CloudEvents JSON object (attributes that are not set are left out)."""
        return self.model_dump(mode="json", exclude_none=True)

    def to_json(self) -> bytes:
        """The CloudEvents JSON form: compact, keys sorted, UTF-8, one line."""
        return json.dumps(
            self.to_dict(), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode("utf-8")


def decode_event(raw: bytes | str | Mapping[str, Any]) -> Event:
    """An event from its JSON form; :class:`InvalidEvent` says what is wrong."""
    try:
        value = json.loads(raw) if isinstance(raw, bytes | str) else dict(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InvalidEvent(f"not JSON: {error}") from error
    if not isinstance(value, dict):
        raise InvalidEvent(f"not a JSON object but {type(value).__name__}")
    try:
        return Event.model_validate(value)
    except ValidationError as error:
        problems = "; ".join(
            f"{'/'.join(str(p) for p in item['loc']) or '(event)'}: {item['msg']}"
            for item in error.errors()
        )
        raise InvalidEvent(f"invalid event: {problems}") from error
    except ValueError as error:
        raise InvalidEvent(f"invalid event: {error}") from error


def event_id(
    event_type: str,
    *,
    tenant: str,
    plan: str,
    flowrunid: str | None,
    taskid: str | None,
    attempt: int | None,
    identity: Mapping[str, Any] | None = None,
) -> str:
    """The deterministic id of an event: a uuid5 over its identity, so a re-publish of the same
    transition carries the same id and is recognised as a duplicate.

    >>> event_id("plan2flow.task.started", tenant="acme", plan="etl", flowrunid="r1",
    ...          taskid="load", attempt=1) == event_id("plan2flow.task.started", tenant="acme",
    ...          plan="etl", flowrunid="r1", taskid="load", attempt=1)
    True
    """
    parts: list[Any] = [tenant, plan, flowrunid, taskid, event_type, attempt]
    if identity:
        parts.append(sorted(identity.items()))
    text = json.dumps(parts, separators=(",", ":"), ensure_ascii=False, default=str)
    return str(uuid.uuid5(ID_NAMESPACE, text))


def new_event(
    event_type: str,
    *,
    tenant: str,
    plan: str,
    graphhash: str | None = None,
    flowrunid: str | None = None,
    taskid: str | None = None,
    attempt: int | None = None,
    data: EventData | Mapping[str, Any] | None = None,
    id: str | None = None,
    time: dt.datetime | None = None,
    source: str | None = None,
) -> Event:
    """Build an event: its subject, its ``data`` validated by the registered model, and its id
    (deterministic unless the type says otherwise or ``id`` is given)."""
    entry = _REGISTRY.get(event_type)
    if entry is not None:
        try:
            typed = data if isinstance(data, entry.data) else entry.data.model_validate(data or {})
        except ValidationError as error:
            raise InvalidEvent(f"{event_type}: {error}") from error
        data = typed
    if id is None:
        if entry is not None and not entry.deterministic:
            id = str(uuid.uuid4())
        else:
            identity = None
            if entry is not None and entry.identity and isinstance(data, EventData):
                identity = {name: getattr(data, name) for name in entry.identity}
            id = event_id(
                event_type,
                tenant=tenant,
                plan=plan,
                flowrunid=flowrunid,
                taskid=taskid,
                attempt=attempt,
                identity=identity,
            )
    values: dict[str, Any] = {
        "id": id,
        "source": source or f"/plan2flow/{tenant}/{label_for(plan)}",
        "type": event_type,
        "subject": subject_for(tenant, plan, event_type),
        "time": time or dt.datetime.now(dt.UTC),
        "dataschema": f"urn:plan2flow:events:{ENVELOPE_VERSION}:{event_type}",
        "tenant": tenant,
        "plan": plan,
        "graphhash": graphhash,
        "flowrunid": flowrunid,
        "taskid": taskid,
        "attempt": attempt,
        "data": data if isinstance(data, EventData) else (dict(data) if data else None),
    }
    try:
        return Event.model_validate(values)
    except ValidationError as error:
        raise InvalidEvent(f"{event_type}: {error}") from error
