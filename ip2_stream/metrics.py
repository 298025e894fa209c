"""The one place metric names are defined. Metrics are created per process on a registry the
owner passes in (never at module level: Ray actors and Serve replicas each own theirs)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

PREFIX = "ip2"
MESSAGES_CONSUMED = f"{PREFIX}_messages_consumed_total"
DEAD_LETTERS = f"{PREFIX}_dead_letters_total"
CONSUMER_LAG = f"{PREFIX}_consumer_lag"
MODEL_VERSION = f"{PREFIX}_model_version"
UPDATE_SECONDS = f"{PREFIX}_update_seconds"
NEW_ENTITIES = f"{PREFIX}_new_entities_total"
SEE_FRESH_ALIGNMENT = f"{PREFIX}_see_fresh_alignment"
SEE_REPLAY_DRIFT = f"{PREFIX}_see_replay_drift"


class StreamMetrics:
    """Counters and gauges of one consumer process.

    Args:
        registry: where to register (a fresh one by default).
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.consumed = Counter(MESSAGES_CONSUMED, "valid messages consumed", ["topic"], registry=self.registry)
        self.dead_letters = Counter(DEAD_LETTERS, "messages sent to the dead-letter topic", ["topic", "reason"], registry=self.registry)
        self.lag = Gauge(CONSUMER_LAG, "messages behind the high watermark", ["topic", "partition"], registry=self.registry)
        self.model_version = Gauge(MODEL_VERSION, "latest model version published", ["component"], registry=self.registry)
        self.update_seconds = Histogram(UPDATE_SECONDS, "duration of a model update", ["component"], registry=self.registry)
        self.new_entities = Counter(NEW_ENTITIES, "entities added to the vocabulary", registry=self.registry)
        self.see_fresh_alignment = Gauge(SEE_FRESH_ALIGNMENT, "fresh news' mean title/signature cosine around the last SEE update",
                                         ["when"], registry=self.registry)
        self.see_replay_drift = Gauge(SEE_REPLAY_DRIFT, "replay news' mean 1 - cos(signature before, after) in the last SEE update",
                                      registry=self.registry)
