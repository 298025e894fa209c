"""MIND splits as stream records: news (arriving at first appearance), impressions, clicks.

MIND has no publication time per news item: a news item arrives when it is first shown or
first appears in a history. Clicks carry the impression's time; a replay reveals them later.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ip2_stream.data.dataset import Corpus
from ip2_stream.stream.records import ClickRecord, ImpressionRecord, NewsRecord


def news_arrival(corpus: Corpus) -> np.ndarray:
    """[N] first time each news item appears in any loaded split (int64 seconds; max int if never)."""
    first = np.full(corpus.num_news, np.iinfo(np.int64).max, dtype=np.int64)
    for beh in corpus.splits.values():
        for ptr, idx in ((beh.hist_ptr, beh.hist_idx), (beh.cand_ptr, beh.cand_idx)):
            times = np.repeat(beh.time, np.diff(ptr))
            np.minimum.at(first, idx, times)
    return first


class MindEvents:
    """Stream records of a loaded corpus.

    Args:
        corpus: the loaded MIND corpus.
    """

    def __init__(self, corpus: Corpus) -> None:
        self.corpus = corpus
        self.arrival = news_arrival(corpus)
        self.cols = {c: corpus.column(c) for c in ("news_id", "category", "subcategory", "title", "title_entities",
                                                    "title_entity_labels")}

    def news(self, news: np.ndarray | None = None) -> Iterator[NewsRecord]:
        """News records in arrival order (all news, or the corpus indices ``news``)."""
        never = np.iinfo(np.int64).max
        order = np.argsort(self.arrival, kind="stable") if news is None else np.asarray(news)[np.argsort(self.arrival[news], kind="stable")]
        c = self.cols
        for n in order:
            if self.arrival[n] == never:
                continue
            yield NewsRecord(news_id=c["news_id"][n], category=c["category"][n], subcategory=c["subcategory"][n],
                             title=c["title"][n], entities=tuple(c["title_entities"][n]),
                             entity_labels=tuple(c["title_entity_labels"][n]), time=int(self.arrival[n]))

    def impression(self, role: str, i: int) -> tuple[ImpressionRecord, ClickRecord]:
        """The impression record and the click record of impression ``i`` of split ``role``."""
        beh = self.corpus.splits[role]
        ids = self.cols["news_id"]
        cands = tuple(ids[n] for n in beh.candidates(i))
        user = self.corpus.users[beh.user[i]]
        imp = ImpressionRecord(impression_id=int(beh.impression_id[i]), user_id=user, time=int(beh.time[i]),
                               history=tuple(ids[n] for n in beh.history(i)), candidates=cands)
        labels = beh.candidate_labels(i)
        click = ClickRecord(impression_id=int(beh.impression_id[i]), user_id=user, time=int(beh.time[i]),
                            clicked=tuple(c for c, y in zip(cands, labels) if y == 1), shown=cands)
        return imp, click
