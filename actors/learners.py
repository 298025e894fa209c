"""The learning actors of the live loop and the registry actor.

- :class:`SEEUpdater`: every ``see_period_s`` while new entities wait in the news store, or at
  once when ``see_burst_entities`` wait, grows the entity table, runs incremental contrastive
  steps on the news carrying them (plus a replay sample of older news) and publishes the
  entity part.
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
from ip2_stream.online.learners import ClickJoiner, Joined, NewsBatch, SignatureUpdater, SEESchedule, UserTowerLearner, see_batches, see_summary
from ip2_stream.online.live import LiveConfig, bootstrap_registry, learner_state, load_version, process_memory, publish, refresh_part
from ip2_stream.registry import Registry, VersionInfo
from ip2_stream.stream.io import ValidatingConsumer, offsets_from_json, offsets_to_json
from ip2_stream.stream.records import decode, encode

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
        self.scanned = self.cursor  # news before it have been looked at
        self.caught_up_to = self.cursor  # news before it are learned from (published) or need nothing
        self.vocab = Vocab.from_dict(self.ckpt.vocab.to_dict())  # a prefix of the ingestor's; grows with its tail
        self.schedule = SEESchedule(cfg.online)
        self.rng = np.random.default_rng(cfg.seed + self.cursor)
        self.metrics = StreamMetrics()
        self.last_publish: float | None = None
        self.published: list[int] = []
        self._start("see-updater")

    def _tick(self) -> None:
        time.sleep(self.cfg.online.see_poll_s)
        info = ray.get(self.ingestor.since.remote(self.scanned, len(self.vocab)))
        self.vocab.extend(info["vocab_tail"])
        self.schedule.scan(self.scanned, info["entity_ids"], len(self.model.news.entity.table))
        self.scanned = info["end"]
        if not self.schedule.pending:
            self.caught_up_to = self.scanned
        if not self.schedule.due():
            return
        fresh, waiting = self.schedule.take()
        names = sorted(self.vocab.token(e)[1] for e in waiting)
        started = time.perf_counter()
        with self.lock:
            self.learner.grow_to(len(self.vocab))  # every id of the scanned news, none beyond
            stats = []  # per batch learned from: fresh count, alignment before/after, replay drift, loss
            for fresh_seqs, replay_seqs in see_batches(fresh, self.scanned, self.cfg.online, self.rng):
                replay = self.features.batch(replay_seqs) if replay_seqs else None
                self.learner.learn_many(self.features.batch(fresh_seqs), replay)
                if self.learner.last_alignment is not None:
                    stats.append((len(fresh_seqs), *self.learner.last_alignment, self.learner.last_drift, self.learner.last_loss))
            self.cursor = self.scanned
            summary = see_summary(stats)
            version = publish(self.registry, self.cfg, self.model, self.ckpt, self.vocab, ("entity",), self.ROLE,
                              {"cursor": self.cursor}, note=f"{len(waiting)} new entities, {len(fresh)} news",
                              metrics={"new_entities": names, "fresh_news": sum(row[0] for row in stats), **summary})
        if summary["fresh_alignment_after"] is not None:
            self.metrics.see_fresh_alignment.labels("before").set(summary["fresh_alignment_before"])
            self.metrics.see_fresh_alignment.labels("after").set(summary["fresh_alignment_after"])
        if summary["replay_drift"] is not None:
            self.metrics.see_replay_drift.set(summary["replay_drift"])
        self.metrics.update_seconds.labels(self.ROLE).observe(time.perf_counter() - started)
        self.metrics.model_version.labels(self.ROLE).set(version)
        self.published.append(version)
        self.last_publish = time.time()
        self.caught_up_to = self.cursor
        logger.info("SEE update: %d new entities in %d news -> version %d (%s)", len(waiting), len(fresh), version, summary)

    def status(self) -> dict:
        return {"cursor": self.cursor, "scanned": self.scanned, "waiting_entities": len(self.schedule.waiting),
                "caught_up_to": self.caught_up_to,
                "updates": self.learner.updates, "last_loss": self.learner.last_loss,
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
        # joined impressions not trained yet; those whose news the store lacks wait for them
        # (up to news_wait_s) and are stored with each version, as their offsets are committed
        self.buffer: list[Joined] = [Joined(decode("impression", i.encode()), decode("click", c.encode())) for i, c in state.get("held", [])]
        self._buffered_at = {j.impression.impression_id: time.monotonic() for j in self.buffer}  # id -> when buffered
        self.without_news = 0  # trained past news_wait_s with news the store still lacked
        self._known: set[str] = set()  # news ids the store is known to hold
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
                self._learn(force=True)
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
            if record.impression_id in self._trained or record.impression_id in self._buffered_at:
                self.skipped_replays += 1
                continue
            joined = self.joiner.add(record)
            if joined is not None:
                self.buffer.append(joined)
                self._buffered_at[joined.impression.impression_id] = time.monotonic()
        self.joiner.expire(self.watermark)
        if len(self.buffer) >= self.cfg.online.user_batch:
            self._learn()
        if time.monotonic() - self.last_publish_mono >= self.cfg.online.checkpoint_period_s:
            if self.buffer:
                self._learn()
            if self._state_key() != self._published_state:
                self._publish()

    def _learn(self, force: bool = False) -> None:
        """Train the buffered impressions whose news the store has, and those that waited
        ``news_wait_s`` (or all, with ``force``); the rest stay buffered."""
        with self.lock:
            now = time.monotonic()
            asked = sorted({n for j in self.buffer for n in (*j.impression.candidates, *j.impression.history)} - self._known)
            if asked:  # news once in the store stay there: ask only about the others
                self._known.update(n for n, seq in zip(asked, self.learner.features.seqs(asked)) if seq >= 0)
            ready, held = [], []
            for j in self.buffer:
                waited = now - self._buffered_at.setdefault(j.impression.impression_id, now)
                complete = self._known.issuperset(j.impression.candidates) and self._known.issuperset(j.impression.history)
                if complete or force or waited >= self.cfg.online.news_wait_s:
                    ready.append(j)
                    self.without_news += not complete
                else:
                    held.append(j)
            if ready:
                self.learner.learn_many(ready)
            for j in ready:
                self.ledger.append(j.impression.impression_id)
                self._trained.add(j.impression.impression_id)
                self._buffered_at.pop(j.impression.impression_id, None)
            self.buffer = held

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
                     "joiner": self.joiner.state(), "partition_time": self.partition_time,
                     "held": [[encode(j.impression).decode(), encode(j.click).decode()] for j in self.buffer]}
            version = publish(self.registry, self.cfg, self.model, self.ckpt, self.ckpt.vocab, ("user",), self.ROLE, state,
                              note=f"user towers after {len(self.ledger)} impressions",
                              metrics={"train_loss": self.learner.last_loss, "steps": self.learner.steps})
        self.consumer.commit(positions)  # only after the state they produced is published
        self._published_state = self._state_key()
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
                "buffered": len(self.buffer), "trained_without_news": self.without_news,
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
            self._learn(force=True)
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
