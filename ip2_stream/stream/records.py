"""Typed, versioned stream records and the one codec that turns them into bytes and back.

Every message is a JSON object ``{"schema": <name>, "version": <int>, ...fields}``. Decoding
never raises: it returns the record or a :class:`DecodeError` value naming the reason, so a
consumer can route bad input to the dead-letter topic and keep going.

Example:
    >>> raw = encode(ClickRecord(impression_id=7, user_id="U1", time=1573808122, clicked=("N1",), shown=("N1", "N2")))
    >>> decode("clicks", raw)
    ClickRecord(impression_id=7, user_id='U1', time=1573808122, clicked=('N1',), shown=('N1', 'N2'))
"""

from __future__ import annotations

import json
from typing import ClassVar, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

SCHEMA_VERSION = 1
MAX_MESSAGE_BYTES = 256 * 1024


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)
    schema_name: ClassVar[str]

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.model_dump().items())
        return f"{type(self).__name__}({fields})"


class NewsRecord(_Record):
    """A news item arriving on the news stream (key: news id)."""

    schema_name: ClassVar[str] = "news"
    news_id: str = Field(min_length=1)
    category: str = Field(min_length=1)
    subcategory: str = ""
    title: str = Field(min_length=1)
    entities: tuple[str, ...] = ()  # WikidataIds in title order
    entity_labels: tuple[str, ...] = ()
    time: int = Field(ge=0, description="arrival time, seconds since the epoch")


class ImpressionRecord(_Record):
    """Candidates shown to a user, with the user's click history (key: user id)."""

    schema_name: ClassVar[str] = "impression"
    impression_id: int = Field(ge=0)
    user_id: str = Field(min_length=1)
    time: int = Field(ge=0)
    history: tuple[str, ...] = ()
    candidates: tuple[str, ...] = Field(min_length=1)


class ClickRecord(_Record):
    """The labels of an impression, revealed later (key: user id)."""

    schema_name: ClassVar[str] = "click"
    impression_id: int = Field(ge=0)
    user_id: str = Field(min_length=1)
    time: int = Field(ge=0)
    clicked: tuple[str, ...] = ()
    shown: tuple[str, ...] = Field(min_length=1)


Record = Union[NewsRecord, ImpressionRecord, ClickRecord]
_BY_SCHEMA: dict[str, type[_Record]] = {cls.schema_name: cls for cls in (NewsRecord, ImpressionRecord, ClickRecord)}


class DecodeError(BaseModel):
    """Why a message could not be decoded; carries the raw bytes for the dead-letter topic."""

    model_config = ConfigDict(frozen=True)
    reason: str
    raw: bytes


def encode(record: Record) -> bytes:
    """Bytes of ``record`` (compact JSON with its schema name and version)."""
    payload = {"schema": record.schema_name, "version": SCHEMA_VERSION, **record.model_dump(mode="json")}
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


def decode(expected: str | None, raw: bytes, max_bytes: int = MAX_MESSAGE_BYTES) -> Record | DecodeError:
    """The record in ``raw``, or a :class:`DecodeError`; never raises.

    Args:
        expected: the schema this topic carries (``news``, ``impression``, ``click``), or None for any.
        raw: message value.
        max_bytes: larger messages are rejected unread.
    """
    if raw is None:
        return DecodeError(reason="empty message (null value)", raw=b"")
    if len(raw) > max_bytes:
        return DecodeError(reason=f"message of {len(raw)} bytes exceeds the {max_bytes}-byte limit", raw=raw[:1024])
    try:
        payload = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return DecodeError(reason=f"not JSON: {exc}", raw=raw)
    if not isinstance(payload, dict):
        return DecodeError(reason=f"expected a JSON object, got {type(payload).__name__}", raw=raw)
    schema, version = payload.pop("schema", None), payload.pop("version", None)
    if schema not in _BY_SCHEMA:
        return DecodeError(reason=f"unknown schema {schema!r}", raw=raw)
    if expected is not None and schema != expected:
        return DecodeError(reason=f"schema {schema!r} on a topic that carries {expected!r}", raw=raw)
    if version != SCHEMA_VERSION:
        return DecodeError(reason=f"unsupported {schema} schema version {version!r} (this build reads {SCHEMA_VERSION})", raw=raw)
    cls = _BY_SCHEMA[schema]
    for key in ("entities", "entity_labels", "history", "candidates", "clicked", "shown"):
        if isinstance(payload.get(key), list):
            payload[key] = tuple(payload[key])
    try:
        return cls.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or schema
        return DecodeError(reason=f"invalid {schema}: {where}: {first['msg']}", raw=raw)
