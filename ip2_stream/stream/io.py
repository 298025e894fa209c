"""Producers and validating consumers over kafka-python, with dead-lettering.

A :class:`ValidatingConsumer` decodes every message with the one codec; a message that does
not decode is published, unchanged, to the dead-letter topic with its reason and origin in
the headers, counted, and skipped, so bad input never stops a consumer. Offsets are only
committed when the caller says its state is durable (:meth:`ValidatingConsumer.commit`).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Literal

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError
from kafka.structs import OffsetAndMetadata, TopicPartition
from pydantic import BaseModel, ConfigDict, Field

from ip2_stream.errors import IP2StreamError
from ip2_stream.metrics import StreamMetrics
from ip2_stream.stream.records import MAX_MESSAGE_BYTES, DecodeError, Record, decode, encode

logger = logging.getLogger(__name__)


class TopicsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    news: str = "ip2.news"
    impressions: str = "ip2.impressions"
    clicks: str = "ip2.clicks"
    dead_letter: str = "ip2.dead-letter"
    partitions: int = Field(2, ge=1)


class StreamConfig(BaseModel):
    """Where the streams live and how consumers behave."""

    model_config = ConfigDict(extra="forbid")

    bootstrap_servers: str | None = Field(None, description="host:port[,...]; None: the embedded broker")
    topics: TopicsConfig = TopicsConfig()
    max_message_bytes: int = MAX_MESSAGE_BYTES
    # group joins stall about half the session timeout on the embedded broker: keep it short
    session_timeout_ms: int = 6000
    heartbeat_interval_ms: int = 2000
    # a consumer that started before a topic's leaders were known refreshes its view this often
    metadata_max_age_ms: int = 5000

    def schema_of(self, topic: str) -> Literal["news", "impression", "click"]:
        t = self.topics
        mapping = {t.news: "news", t.impressions: "impression", t.clicks: "click"}
        if topic not in mapping:
            raise ValueError(f"{topic!r} is not one of the configured data topics")
        return mapping[topic]  # type: ignore[return-value]


def offsets_to_json(positions: dict[tuple[str, int], int]) -> dict[str, int]:
    """Partition offsets as a JSON object: ``{"topic:partition": offset}``."""
    return {f"{topic}:{part}": offset for (topic, part), offset in positions.items()}


def offsets_from_json(stored: dict[str, int]) -> dict[tuple[str, int], int]:
    """Inverse of :func:`offsets_to_json`."""
    out = {}
    for key, offset in stored.items():
        topic, _, part = key.rpartition(":")
        out[(topic, int(part))] = int(offset)
    return out


def ensure_topics(cfg: StreamConfig, bootstrap: str) -> None:
    """Create the four topics if they do not exist yet."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="ip2-admin")
    try:
        existing = set(admin.list_topics())
        t = cfg.topics
        wanted = [NewTopic(name, t.partitions, 1) for name in (t.news, t.impressions, t.clicks, t.dead_letter) if name not in existing]
        if wanted:
            try:
                admin.create_topics(wanted, wait_for_metadata=True)  # leaders known before anyone reads
            except TopicAlreadyExistsError:
                pass
    finally:
        admin.close()


class RecordProducer:
    """Send typed records (and raw bytes, for tests and the dead-letter path)."""

    def __init__(self, bootstrap: str, **kwargs) -> None:
        self._producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, **kwargs)

    def send(self, topic: str, key: str, record: Record):
        return self._producer.send(topic, key=key.encode("utf-8"), value=encode(record))

    def send_raw(self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]] | None = None):
        return self._producer.send(topic, key=key, value=value, headers=headers or [])

    def flush(self) -> None:
        self._producer.flush()

    def close(self) -> None:
        self._producer.close()


@dataclass(frozen=True)
class Consumed:
    """A decoded record and where it came from."""

    topic: str
    partition: int
    offset: int
    record: Record


class ValidatingConsumer:
    """Poll topics, decode records, dead-letter the rest, commit only on request.

    Args:
        cfg: stream configuration.
        bootstrap: broker address.
        topics: topics to read (each must be a configured data topic).
        group_id: consumer group (offsets are stored there).
        metrics: counters to update (a private set by default).
    """

    def __init__(self, cfg: StreamConfig, bootstrap: str, topics: list[str], group_id: str,
                 metrics: StreamMetrics | None = None) -> None:
        self.cfg = cfg
        self.metrics = metrics or StreamMetrics()
        self._consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, group_id=group_id, enable_auto_commit=False,
            auto_offset_reset="earliest", session_timeout_ms=cfg.session_timeout_ms,
            heartbeat_interval_ms=cfg.heartbeat_interval_ms, max_partition_fetch_bytes=max(cfg.max_message_bytes * 4, 1 << 20),
            metadata_max_age_ms=cfg.metadata_max_age_ms,
        )
        # one consumer per actor reads every partition: manual assignment (no group join, and a
        # restarted actor can seek to the offsets stored with its checkpoint at once)
        self._consumer.assign(self._partitions(topics))
        self._dead = RecordProducer(bootstrap)
        self.positions: dict[tuple[str, int], int] = {}  # next offset to read, per partition

    def _partitions(self, topics: list[str], timeout_s: float = 10.0) -> list[TopicPartition]:
        deadline = time.monotonic() + timeout_s
        out: list[TopicPartition] = []
        for topic in topics:
            parts = self._consumer.partitions_for_topic(topic)
            while not parts and time.monotonic() < deadline:
                time.sleep(0.1)
                parts = self._consumer.partitions_for_topic(topic)
            if not parts:
                raise IP2StreamError(f"topic {topic!r} does not exist (run ensure_topics / stream up first)")
            out.extend(TopicPartition(topic, p) for p in sorted(parts))
        return out

    def poll(self, timeout_ms: int = 500, max_records: int | None = None) -> list[Consumed]:
        batches = self._consumer.poll(timeout_ms=timeout_ms, max_records=max_records)
        out: list[Consumed] = []
        for tp, messages in batches.items():
            schema = self.cfg.schema_of(tp.topic)
            valid = 0
            for msg in messages:
                result = decode(schema, msg.value, self.cfg.max_message_bytes)
                if isinstance(result, DecodeError):
                    self._dead_letter(tp, msg, result)
                else:
                    valid += 1
                    out.append(Consumed(tp.topic, tp.partition, msg.offset, result))
            if messages:
                self.positions[(tp.topic, tp.partition)] = messages[-1].offset + 1
                self.metrics.consumed.labels(tp.topic).inc(valid)
            hw = self._consumer.highwater(tp)
            if hw is not None:
                self.metrics.lag.labels(tp.topic, str(tp.partition)).set(max(0, hw - self.positions[(tp.topic, tp.partition)]))
        return out

    def _dead_letter(self, tp: TopicPartition, msg, error: DecodeError) -> None:
        reason_class = error.reason.split(":")[0][:60]
        self.metrics.dead_letters.labels(tp.topic, reason_class).inc()
        headers = [("reason", error.reason.encode()), ("source_topic", tp.topic.encode()),
                   ("source_partition", str(tp.partition).encode()), ("source_offset", str(msg.offset).encode())]
        self._dead.send_raw(self.cfg.topics.dead_letter, msg.key, msg.value if msg.value is not None else b"", headers)
        self._dead.flush()
        logger.warning("dead-lettered %s[%d]@%d: %s", tp.topic, tp.partition, msg.offset, error.reason)

    def lag(self) -> dict[str, int]:
        """Messages behind the high watermark per topic (from the fetch responses)."""
        out: dict[str, int] = {}
        for (topic, part), pos in self.positions.items():
            hw = self._consumer.highwater(TopicPartition(topic, part))
            if hw is not None:
                out[topic] = out.get(topic, 0) + max(0, hw - pos)
        return out

    def partition_lags(self) -> dict[str, int | None]:
        """``topic:partition`` -> messages behind the high watermark, for every assigned partition
        (None while its high watermark is not known yet)."""
        out: dict[str, int | None] = {}
        for tp in self._consumer.assignment():
            hw = self._consumer.highwater(tp)
            pos = self.positions.get((tp.topic, tp.partition), 0)
            out[f"{tp.topic}:{tp.partition}"] = None if hw is None else max(0, hw - pos)
        return out

    def commit(self, positions: dict[tuple[str, int], int] | None = None) -> None:
        """Commit ``positions`` (default: everything polled so far). Call only once state is durable."""
        positions = self.positions if positions is None else positions
        if positions:
            self._consumer.commit({TopicPartition(t, p): OffsetAndMetadata(o, "", -1) for (t, p), o in positions.items()})

    def seek(self, positions: dict[tuple[str, int], int]) -> None:
        """Resume from stored offsets (a checkpoint's) instead of the group's committed ones."""
        for (topic, part), offset in positions.items():
            self._consumer.seek(TopicPartition(topic, part), offset)
        self.positions.update(positions)

    def close(self) -> None:
        self._dead.close()
        self._consumer.close()
