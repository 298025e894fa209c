"""Reference scorers every model is reported against: random, causal popularity and the oracle."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ip2_stream.data.dataset import Behaviors, Corpus
from ip2_stream.errors import DataError

Scorer = Callable[[Corpus, str], np.ndarray]


def random_scores(corpus: Corpus, role: str, seed: int = 0) -> np.ndarray:
    """Uniform random score per candidate row of split ``role``."""
    return np.random.default_rng(seed).random(len(corpus.splits[role].cand_idx))


def popularity_scores(corpus: Corpus, role: str, seed: int = 0) -> np.ndarray:
    """Clicks each candidate received strictly before the impression (causal), over all loaded splits.

    Impressions of every loaded split are replayed in time order; an impression is scored
    with the counts so far and its own clicks are added after it (labels revealed at
    impression time). Unlabeled splits contribute no clicks.
    """
    del seed  # deterministic
    counts = np.zeros(corpus.num_news, dtype=np.float64)
    events = []
    for name, beh in corpus.splits.items():
        events.extend((int(t), name, i) for i, t in enumerate(beh.time))
    events.sort()
    target = corpus.splits[role]
    out = np.zeros(len(target.cand_idx), dtype=np.float64)
    for _, name, i in events:
        beh = corpus.splits[name]
        lo, hi = beh.cand_ptr[i], beh.cand_ptr[i + 1]
        cands = beh.cand_idx[lo:hi]
        if name == role:
            out[lo:hi] = counts[cands]
        clicked = cands[beh.labels[lo:hi] == 1]
        np.add.at(counts, clicked, 1.0)
    return out


def oracle_scores(corpus: Corpus, role: str, seed: int = 0) -> np.ndarray:
    """True click probabilities from ``truth.tsv`` (synthetic data only)."""
    del seed
    truth = corpus.split_dirs[role].truth()
    if truth is None:
        raise DataError(f"{corpus.split_dirs[role].path}: no truth.tsv (only synthetic data has true click probabilities)")
    beh = corpus.splits[role]
    out = np.zeros(len(beh.cand_idx), dtype=np.float64)
    for i, imp_id in enumerate(beh.impression_id):
        probs = truth.get(int(imp_id))
        lo, hi = beh.cand_ptr[i], beh.cand_ptr[i + 1]
        if probs is None or len(probs) != hi - lo:
            raise DataError(f"truth.tsv does not match impression {imp_id} of {beh.role}")
        out[lo:hi] = probs
    return out


BASELINES: dict[str, Scorer] = {
    "random": random_scores,
    "popularity": popularity_scores,
    "oracle": oracle_scores,
}


def seen_entities(corpus: Corpus, role: str = "train") -> set[str]:
    """Title entities of every news item shown or clicked in split ``role``."""
    beh = corpus.splits[role]
    shown = np.unique(np.concatenate([beh.hist_idx, beh.cand_idx]))
    ents = corpus.news.column("title_entities").take(shown).to_pylist()
    return {e for row in ents for e in row}


def cold_start_mask(corpus: Corpus, role: str, known: set[str]) -> np.ndarray:
    """[I] True for impressions with a candidate carrying a title entity outside ``known``."""
    beh: Behaviors = corpus.splits[role]
    ents = corpus.news.column("title_entities").to_pylist()
    news_cold = np.array([any(e not in known for e in row) for row in ents], dtype=bool)
    return np.logical_or.reduceat(news_cold[beh.cand_idx], beh.cand_ptr[:-1]) if len(beh) else np.zeros(0, bool)
