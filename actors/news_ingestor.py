"""News ingestion actor: news topic -> feature store (vocabulary growth, title encodings).

The actor is the single writer of the :class:`~ip2_stream.online.store.NewsStore`. A
background thread polls the news topic; valid records are added (new entities get new
vocabulary ids, titles go through the frozen-bottom cache), invalid ones are dead-lettered by
the consumer. Every ``snapshot_period_s`` the store is snapshotted with the consumer offsets,
and only then are the offsets committed. On (re)start the constructor restores the snapshot
and resumes from its offsets.
"""

from __future__ import annotations

import logging
import time

import numpy as np
import ray

from actors.loop import Loop
from ip2_stream.data.vocab import Vocab
from ip2_stream.metrics import StreamMetrics
from ip2_stream.model.checkpoint import read_manifest
from ip2_stream.model.ip2 import IP2Config
from ip2_stream.model.text import BottomCache, TitleEncoder, load_hf
from ip2_stream.online.learners import NewsBatch
from ip2_stream.online.live import LiveConfig, bootstrap_registry, process_memory
from ip2_stream.online.store import NewsStore, StoreFeatures
from ip2_stream.stream.io import ValidatingConsumer, offsets_from_json, offsets_to_json

logger = logging.getLogger(__name__)
GROUP = "ip2-news-ingestor"


class NewsIngestor(Loop):
    """Keeps the news feature store fresh. Construct with ``ray.remote(NewsIngestor)`` (see ``actors.launch``)."""

    def __init__(self, cfg: LiveConfig) -> None:
        self.cfg = cfg
        self.metrics = StreamMetrics()
        registry = bootstrap_registry(cfg)
        manifest = read_manifest(registry.latest().path)
        model_cfg = IP2Config.model_validate(manifest["config"])
        self.folder = cfg.state_dir / "news_store"
        offsets: dict[str, int] = {}
        if (self.folder / "state.json").exists():
            self.store, offsets = NewsStore.restore(self.folder, model_cfg.max_entities)
            logger.info("restored %d news from %s", len(self.store), self.folder)
            published = Vocab.from_dict(manifest["vocab"])
            if len(published) > len(self.store.vocab):
                # the SEE updater published ids this snapshot predates: keep them, so the news read
                # again from the stored offsets map to the same ids whatever the partition order
                self.store.vocab.extend(published.tail(len(self.store.vocab)))
        else:
            self.store = NewsStore(Vocab.from_dict(manifest["vocab"]), model_cfg.max_entities)
        encoder = TitleEncoder(*load_hf(model_cfg.text_encoder), trainable_layers=manifest["trainable_layers"],
                               max_len=model_cfg.max_title_len)
        self.features = StoreFeatures(self.store, BottomCache(encoder, cache_dir=None))
        self.consumer = ValidatingConsumer(cfg.stream, cfg.bootstrap, [cfg.stream.topics.news], GROUP, self.metrics)
        self.consumer.seek(offsets_from_json(offsets))
        self.last_update: float | None = None
        self.lag: dict[str, int] = {}
        self.new_entities: list[tuple[str, float]] = []  # (entity, wall time seen), for freshness
        self._last_snapshot = time.monotonic()
        self._dirty = False
        self._start("news-ingestor")

    def _tick(self) -> None:
        # only this thread touches the consumer (kafka-python consumers are not thread-safe)
        consumed = self.consumer.poll(timeout_ms=100, max_records=500)
        self.lag = self.consumer.lag()
        if consumed:
            with self.lock:
                for c in consumed:
                    for entity in self.store.add(c.record):
                        self.new_entities.append((entity, time.time()))
                        self.metrics.new_entities.inc()
                seqs = [self.store.index[c.record.news_id] for c in consumed]
                self.features.bottom.rows(self.store.titles(seqs), progress=False)  # encode titles now
                self.last_update = time.time()
            self._dirty = True
        if self._dirty and time.monotonic() - self._last_snapshot >= self.cfg.snapshot_period_s:
            self._snapshot()
            self._last_snapshot, self._dirty = time.monotonic(), False

    def _snapshot(self) -> None:
        positions = dict(self.consumer.positions)
        with self.lock:
            self.store.snapshot(self.folder, offsets_to_json(positions))
        self.consumer.commit(positions)  # only after the state they produced is durable

    # ------------------------------------------------------------------ reads for learners and serving
    def seqs(self, news_ids: list[str]) -> np.ndarray:
        with self.lock:
            return self.features.seqs(news_ids)

    def batch(self, seqs: list[int]) -> NewsBatch:
        with self.lock:
            return self.features.batch(seqs)

    def since(self, cursor: int, vocab_len: int) -> dict:
        """News from sequence ``cursor`` on: ``end``, each one's entity ids, and the vocabulary
        tokens from id ``vocab_len`` on (one consistent snapshot: every id in ``entity_ids``
        is below ``vocab_len`` + the tail)."""
        with self.lock:
            end, vocab = len(self.store), self.store.vocab
            return {"end": end, "vocab_tail": vocab.tail(vocab_len),
                    "entity_ids": [[vocab.get("entity", e) for e in self.store.records[i].entities] for i in range(cursor, end)]}

    def status(self) -> dict:
        with self.lock:
            return {"news": len(self.store), "vocab": len(self.store.vocab), "lag": self.lag,
                    "last_update": self.last_update, "dead_letters": _total(self.metrics.dead_letters), "error": self.error,
                    **process_memory()}

    def entity_seen_at(self) -> dict[str, float]:
        with self.lock:
            return dict(self.new_entities)

    def flush(self) -> None:
        """Snapshot at the loop's next turn (tests and shutdown)."""
        self._dirty = True
        self._last_snapshot = float("-inf")

    def stop(self) -> None:
        super().stop()
        self._snapshot()
        self.consumer.close()


def _total(counter) -> float:
    return sum(s.value for m in counter.collect() for s in m.samples if s.name.endswith("_total"))


NewsIngestorActor = ray.remote(max_restarts=-1, max_task_retries=-1, num_cpus=0.25)(NewsIngestor)
