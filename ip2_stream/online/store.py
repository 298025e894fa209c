"""The news feature store: every news item seen on the stream, its model inputs, and the vocabulary.

The news-ingestion actor is its single writer: it appends news in arrival order (a sequence
number per item), grows the vocabulary with new entities (new ids at the end, existing ids
never change) and encodes titles through the frozen-bottom cache. Learners and the ranker read
features by news id, and "everything after sequence number s" for incremental updates.

A snapshot (``news.jsonl`` + ``vocab.json`` + ``state.json`` with the consumer offsets) is
written atomically; :meth:`NewsStore.restore` rebuilds the store from it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ip2_stream.data.vocab import Vocab
from ip2_stream.stream.records import NewsRecord


@dataclass
class NewsStore:
    """News rows in arrival order, plus the vocabulary and when each entity was first seen.

    Args:
        vocab: starting vocabulary (e.g. the offline model's); it grows as news arrive.
        max_entities: entities kept per news item.
    """

    vocab: Vocab
    max_entities: int = 16
    records: list[NewsRecord] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)
    entity_first_seen: dict[str, float] = field(default_factory=dict)
    _persisted: int | None = field(default=None, repr=False)  # news already in news.jsonl

    def __len__(self) -> int:
        return len(self.records)

    def add(self, record: NewsRecord) -> list[str]:
        """Store a news item (a repeated id is ignored); returns the entities it made new."""
        if record.news_id in self.index:
            return []
        for kind, key in (("category", record.category), ("subcategory", record.subcategory)):
            if key:
                self.vocab.add(kind, key)  # type: ignore[arg-type]
        new = self.vocab.add_many("entity", record.entities[: self.max_entities])
        for e in record.entities:
            self.entity_first_seen.setdefault(e, float(record.time))
        self.index[record.news_id] = len(self.records)
        self.records.append(record)
        return new

    def entity_sequence(self, seq: int) -> list[int]:
        r = self.records[seq]
        return self.vocab.encode_news(r.category, r.subcategory or "", list(r.entities), self.max_entities)

    def entity_matrix(self, seqs: list[int] | np.ndarray) -> np.ndarray:
        """[n, 2 + max_entities] entity sequences (0-padded) of the news at ``seqs``."""
        out = np.zeros((len(seqs), 2 + self.max_entities), dtype=np.int64)
        for row, s in enumerate(seqs):
            ids = self.entity_sequence(int(s))
            out[row, : len(ids)] = ids
        return out

    def seqs_of(self, news_ids: list[str]) -> np.ndarray:
        """Sequence numbers of ``news_ids`` (-1 for unknown news)."""
        return np.array([self.index.get(n, -1) for n in news_ids], dtype=np.int64)

    def titles(self, seqs) -> list[str]:
        return [self.records[int(s)].title for s in seqs]

    def with_entities(self, entities: set[str], start: int = 0) -> list[int]:
        """Sequence numbers (from ``start``) of news mentioning any of ``entities``."""
        return [i for i in range(start, len(self.records)) if entities.intersection(self.records[i].entities)]

    # ------------------------------------------------------------------ persistence
    def snapshot(self, folder: Path | str, offsets: dict[str, int] | None = None) -> None:
        """Persist the store; ``state.json`` (count, offsets) is replaced last, so a crash leaves the
        previous snapshot valid.

        ``news.jsonl`` is append-only: only news added since the last snapshot are written (after
        a restore or a crash, lines past the recorded count are dropped first). The cost of a
        snapshot grows with what is new, not with the size of the store.
        """
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        news_path = folder / "news.jsonl"
        if self._persisted is None or not news_path.exists():
            self._persisted = 0
            news_path.write_text("", encoding="utf-8")
        with open(news_path, "a", encoding="utf-8") as handle:
            for r in self.records[self._persisted :]:
                handle.write(r.model_dump_json() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        self._persisted = len(self.records)
        tag = f"{os.getpid()}"
        vocab_tmp = folder / f".vocab.json.{tag}"
        self.vocab.save(vocab_tmp)
        state_tmp = folder / f".state.json.{tag}"
        state_tmp.write_text(json.dumps({"count": len(self.records), "offsets": offsets or {},
                                         "entity_first_seen": self.entity_first_seen}), encoding="utf-8")
        vocab_tmp.replace(folder / "vocab.json")
        state_tmp.replace(folder / "state.json")

    @classmethod
    def restore(cls, folder: Path | str, max_entities: int = 16) -> tuple[NewsStore, dict[str, int]]:
        """The store saved in ``folder`` and the offsets saved with it."""
        folder = Path(folder)
        state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
        store = cls(Vocab.load(folder / "vocab.json"), max_entities)
        with open(folder / "news.jsonl", encoding="utf-8") as handle:
            for line, _ in zip(handle, range(state["count"])):
                record = NewsRecord.model_validate_json(line)
                store.index[record.news_id] = len(store.records)
                store.records.append(record)
        # drop lines a crash left past the recorded count, so appends continue from a clean file
        with open(folder / "news.jsonl", "w", encoding="utf-8") as handle:
            handle.writelines(r.model_dump_json() + "\n" for r in store.records)
        store._persisted = len(store.records)
        store.entity_first_seen = {k: float(v) for k, v in state["entity_first_seen"].items()}
        return store, state["offsets"]


class StoreFeatures:
    """:class:`~ip2_stream.online.learners.FeatureSource` over a store and a frozen-bottom cache.

    Args:
        store: the news store.
        bottom: a :class:`~ip2_stream.model.text.BottomCache` (or ``LiveBottom``) for titles.
    """

    def __init__(self, store: NewsStore, bottom) -> None:
        self.store, self.bottom = store, bottom

    def seqs(self, news_ids) -> np.ndarray:
        return self.store.seqs_of(list(news_ids))

    def batch(self, seqs):
        from ip2_stream.online.learners import NewsBatch

        seqs = [int(s) for s in seqs]
        hidden, mask = self.bottom.get(self.bottom.rows(self.store.titles(seqs), progress=False))
        return NewsBatch(hidden.numpy().astype(np.float16), mask.numpy(), self.store.entity_matrix(seqs))
