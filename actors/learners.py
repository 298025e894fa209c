"""The learning actors of the live loop and the registry actor.

- :class:`SEEUpdater`: every ``see_period_s``, once ``see_min_new_entities`` new entities wait
  in the news store, grows the entity table, runs incremental contrastive steps on the news
  carrying them (plus a replay sample of older news) and publishes the entity part.
- :class:`UserTowerTrainer`: joins impressions with their delayed clicks, fine-tunes the user
  towers and gates in small steps, and publishes the user part with its consumer offsets,
  pending joins and the ledger of trained impression ids, all in the same version. Training
  is idempotent per impression id: a replayed impression already in the ledger is skipped.

Both restore their model and their state from the registry in ``__init__``, so an actor
restarted by Ray resumes where its last published version left off.
"""

from __future__ import annotations

import logging
import math
import threading
import time

import numpy as np
import ray

from actors.loop import Loop
from ip2_stream.data.vocab import Vocab
from ip2_stream.metrics import StreamMetrics
from ip2_stream.online.learners import ClickJoiner, Joined, NewsBatch, SignatureUpdater, UserTowerLearner, see_batches, see_summary
from ip2_stream.online.live import LiveConfig, bootstrap_registry, learner_state, load_version, process_memory, publish, refresh_part
from ip2_stream.registry import Registry, VersionInfo
from ip2_stream.stream.io import ValidatingConsumer, offsets_from_json, offsets_to_json

logger = logging.getLogger(__name__)


class RemoteFeatures:
    """:class:`~ip2_stream.online.learners.FeatureSource` backed by the news-ingestion actor."""

    def __init__(self, ingestor) -> None:
        self.ingestor = ingestor

    def seqs(self, news_ids) -> np.ndarray:
        return ray.get(self.ingestor.seqs.remote(list(news_ids)))

    def batch(self, seqs) -> NewsBatch:
        return ray.get(self.ingestor.batch.remote([int(s) for s in seqs]))


class SEEUpdater(Loop):
    """Incremental contrastive updates of the entity tower, published to the registry."""

    ROLE = "see"

    def __init__(self, cfg: LiveConfig, ingestor) -> None:
        self.cfg = cfg
        self.ingestor = ingestor
        self.features = RemoteFeatures(ingestor)
        self.registry = bootstrap_registry(cfg)
        self.ckpt = load_version(self.registry)
        self.model = self.ckpt.model.eval()
        self.learner = SignatureUpdater(self.model, cfg.online, cfg.seed)
        state = learner_state(self.registry, self.ROLE)
        self.cursor = int(state.get("cursor", 0))  # news before it have been learned from
        self.rng = np.random.default_rng(cfg.seed + self.cursor)
        self.metrics = StreamMetrics()
        self.last_publish: float | None = None
        self.published: list[int] = []
        self._start("see-updater")

    def _tick(self) -> None:
        time.sleep(self.cfg.online.see_period_s)
        info = ray.get(self.ingestor.since.remote(self.cursor))
        vocab = Vocab.from_dict(info["vocab"])
        table_rows = len(self.model.news.entity.table)
        new_seqs = [self.cursor + i for i, ents in enumerate(info["entities"])
                    if any((vocab.get("entity", e) or 0) >= table_rows for e in ents)]
        waiting = {e for ents in info["entities"] for e in ents if (vocab.get("entity", e) or 0) >= table_rows}
        if len(waiting) < self.cfg.online.see_min_new_entities:
            return
        started = time.perf_counter()
        with self.lock:
            self.learner.grow_to(len(vocab))
            stats = []  # per batch learned from: fresh count, alignment before/after, replay drift, loss
            for fresh_seqs, replay_seqs in see_batches(new_seqs, info["end"], self.cfg.online, self.rng):
                replay = self.features.batch(replay_seqs) if replay_seqs else None
                self.learner.learn_many(self.features.batch(fresh_seqs), replay)
                if self.learner.last_alignment is not None:
                    stats.append((len(fresh_seqs), *self.learner.last_alignment, self.learner.last_drift, self.learner.last_loss))
            self.cursor = info["end"]
            summary = see_summary(stats)
            version = publish(self.registry, self.cfg, self.model, self.ckpt, vocab, ("entity",), self.ROLE,
                              {"cursor": self.cursor}, note=f"{len(waiting)} new entities",
                              metrics={"new_entities": sorted(waiting), "fresh_news": sum(row[0] for row in stats), **summary})
        if summary["fresh_alignment_after"] is not None:
            self.metrics.see_fresh_alignment.labels("before").set(summary["fresh_alignment_before"])
            self.metrics.see_fresh_alignment.labels("after").set(summary["fresh_alignment_after"])
        if summary["replay_drift"] is not None:
            self.metrics.see_replay_drift.set(summary["replay_drift"])
        self.metrics.update_seconds.labels(self.ROLE).observe(time.perf_counter() - started)
        self.metrics.model_version.labels(self.ROLE).set(version)
        self.published.append(version)
        self.last_publish = time.time()
        logger.info("SEE update: %d new entities in %d news -> version %d (%s)", len(waiting), len(new_seqs), version, summary)

    def status(self) -> dict:
        return {"cursor": self.cursor, "updates": self.learner.updates, "last_loss": self.learner.last_loss,
                "published": self.published[-5:], "last_publish": self.last_publish, "error": self.error,
                "table_rows": len(self.model.news.entity.table), **process_memory()}


class UserTowerTrainer(Loop):
    """Joins impressions and clicks, fine-tunes the user towers, publishes the user part."""

    ROLE = "trainer"

    def __init__(self, cfg: LiveConfig, ingestor) -> None:
        self.cfg = cfg
        self.registry = bootstrap_registry(cfg)
        self.ckpt = load_version(self.registry)
        self.seen_version = self.registry.latest().version
        self.model = self.ckpt.model.eval()
        self.learner = UserTowerLearner(self.model, RemoteFeatures(ingestor), cfg.online, cfg.seed)
        state = learner_state(self.registry, self.ROLE)
        self.ledger: list[int] = list(state.get("ledger", []))  # impression ids baked into the model
        self._trained = set(self.ledger)
        self.joiner = ClickJoiner.from_state(cfg.online.join_window_s, state.get("joiner", {}))
        # event time of each partition; the watermark is the slowest one's (a fast partition
        # must not expire impressions whose clicks wait in a slower one)
        self.partition_time: dict[str, float] = dict(state.get("partition_time", {}))
        self.metrics = StreamMetrics()
        t = cfg.stream.topics
        self.consumer = ValidatingConsumer(cfg.stream, cfg.bootstrap, [t.impressions, t.clicks], "ip2-user-trainer", self.metrics)
        offsets = state.get("offsets", {})
        self.consumer.seek(offsets_from_json(offsets))
        self.buffer: list[Joined] = []
        self.lag: dict[str, int] = {}
        self.partition_lags: dict[str, int | None] = {}
        self._flush_requested, self._flushed = threading.Event(), threading.Event()
        self.skipped_replays = 0
        self.last_publish_mono = time.monotonic()
        self.last_publish: float | None = None
        self.published: list[int] = []
        self._published_state = self._state_key()  # what the latest version holds; publish only on change
        self._start("user-trainer")

    def _state_key(self) -> tuple[int, dict]:
        """Trained impressions and consumer positions: a version is due only when one moved."""
        return len(self.ledger), dict(self.consumer.positions)

    def _tick(self) -> None:
        # only this thread touches the consumer (kafka-python consumers are not thread-safe)
        if self._flush_requested.is_set():
            if self.buffer:
                self._learn()
            if self._state_key() != self._published_state or not self.published:
                self._publish()
            self._flush_requested.clear()
            self._flushed.set()
        consumed = self.consumer.poll(timeout_ms=100, max_records=1000)
        self.lag = self.consumer.lag()
        self.partition_lags = self.consumer.partition_lags()
        for c in consumed:
            record = c.record
            key = f"{c.topic}:{c.partition}"
            self.partition_time[key] = max(self.partition_time.get(key, 0.0), float(record.time))
            if record.impression_id in self._trained:
                self.skipped_replays += 1
                continue
            joined = self.joiner.add(record)
            if joined is not None:
                self.buffer.append(joined)
        self.joiner.expire(self.watermark)
        if len(self.buffer) >= self.cfg.online.user_batch:
            self._learn()
        if time.monotonic() - self.last_publish_mono >= self.cfg.online.checkpoint_period_s:
            if self.buffer:
                self._learn()
            if self._state_key() != self._published_state:
                self._publish()

    def _learn(self) -> None:
        with self.lock:
            self.learner.learn_many(self.buffer)
            for j in self.buffer:
                self.ledger.append(j.impression.impression_id)
                self._trained.add(j.impression.impression_id)
            self.buffer = []

    def _publish(self) -> None:
        self.last_publish_mono = time.monotonic()
        latest: VersionInfo = self.registry.latest()
        if latest.version > self.seen_version:
            fresh = load_version(self.registry)  # pick up the newest entity tower (and vocabulary)
            refresh_part(self.model, fresh.model, "news.entity.")
            self.learner.news_changed()
            self.ckpt, self.seen_version = fresh, latest.version
        positions = dict(self.consumer.positions)
        with self.lock:
            state = {"offsets": offsets_to_json(positions), "ledger": list(self.ledger),
                     "joiner": self.joiner.state(), "partition_time": self.partition_time}
            version = publish(self.registry, self.cfg, self.model, self.ckpt, self.ckpt.vocab, ("user",), self.ROLE, state,
                              note=f"user towers after {len(self.ledger)} impressions",
                              metrics={"train_loss": self.learner.last_loss, "steps": self.learner.steps})
        self.consumer.commit(positions)  # only after the state they produced is published
        self._published_state = (len(self.ledger), positions)
        self.metrics.model_version.labels(self.ROLE).set(version)
        self.published.append(version)
        self.seen_version = version
        self.last_publish = time.time()

    def flush(self, timeout_s: float = 60.0) -> int:
        """Learn what is buffered and publish (done by the loop thread); returns the version."""
        self._flushed.clear()
        self._flush_requested.set()
        if not self._flushed.wait(timeout_s):
            raise TimeoutError(f"the trainer did not publish within {timeout_s} s ({self.error})")
        return self.published[-1]

    def status(self) -> dict:
        return {"trained_impressions": len(self.ledger), "steps": self.learner.steps, "last_loss": self.learner.last_loss,
                "pending_impressions": len(self.joiner.impressions), "pending_clicks": len(self.joiner.clicks),
                "expired": self.joiner.expired, "watermark": self.watermark if math.isfinite(self.watermark) else None,
                "skipped_replays": self.skipped_replays, "lag": self.lag, "published": self.published[-5:],
                "last_publish": self.last_publish, "error": self.error, **process_memory()}

    @property
    def watermark(self) -> float:
        """Event time every partition has reached: the slowest partition's, ignoring empty ones;
        -inf while some partition has not reported yet."""
        times = []
        for key, lag in self.partition_lags.items():
            seen = self.partition_time.get(key)
            if lag is None or (seen is None and lag > 0):
                return float("-inf")
            if seen is not None:
                times.append(seen)
        return min(times) if times else float("-inf")

    def ledger_ids(self) -> list[int]:
        return list(self.ledger)

    def stop(self) -> None:
        """Stop the loop, publish what was learned since the last version, close the consumer."""
        super().stop()
        if self.buffer:
            self._learn()
        if self._state_key() != self._published_state:
            self._publish()
        self.consumer.close()


class RegistryService:
    """The registry behind a Ray actor: serving asks it for the promoted version."""

    def __init__(self, cfg: LiveConfig) -> None:
        self.registry: Registry = bootstrap_registry(cfg)

    def status(self) -> dict:
        latest = self.registry.latest()
        return {"latest": latest.version if latest else None, **process_memory()}

    def versions(self) -> list[dict]:
        return [v.__dict__ for v in self.registry.versions()]

    def latest(self) -> dict | None:
        v = self.registry.latest()
        return v.__dict__ if v else None

    def promoted(self) -> dict | None:
        v = self.registry.promoted()
        return v.__dict__ if v else None

    def get(self, version: int) -> dict:
        return self.registry.get(version).__dict__

    def promote(self, version: int) -> None:
        self.registry.promote(version)

    def rollback(self) -> int:
        return self.registry.rollback()


SEEUpdaterActor = ray.remote(max_restarts=-1, max_task_retries=-1, num_cpus=0.25)(SEEUpdater)
UserTowerTrainerActor = ray.remote(max_restarts=-1, max_task_retries=-1, num_cpus=0.25)(UserTowerTrainer)
RegistryActor = ray.remote(max_restarts=-1, max_task_retries=-1, num_cpus=0)(RegistryService)
