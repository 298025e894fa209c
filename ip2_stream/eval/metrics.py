"""Ranking metrics per impression, as MIND's official evaluation script defines them.

Per impression: AUC (sklearn's ``roc_auc_score``), MRR (``sum(y / rank) / sum(y)``), and
nDCG@5 / nDCG@10 with gain ``2^y - 1`` and discount ``log2(rank + 1)``; each then averaged
over impressions.

Two details the official script leaves open are fixed here, and documented:

- **Ties.** The official script ranks by ``np.argsort(score)[::-1]``, whose order among equal
  scores is an accident of the sort. Here every metric is its *expected value over a uniformly
  random order of tied candidates*: identical to the script whenever scores are distinct,
  and for AUC identical to sklearn's tie handling (a tied pair counts one half).
- **Single-class impressions.** The official script calls sklearn's ``roc_auc_score``, which
  raises on an impression whose labels are all 0 or all 1, so such an impression cannot be
  scored there. Here they are left out of every average and counted
  (``skipped_single_class``); unlabeled candidates (label -1) are an error.

Everything is vectorized over CSR arrays (``ptr``/``labels``/``scores``), so the whole
MIND-large dev set is scored in seconds.

Example:
    >>> import numpy as np
    >>> m = rank_metrics(np.array([0, 3]), np.array([1, 0, 0]), np.array([0.9, 0.5, 0.1]))
    >>> round(m.auc, 3), round(m.mrr, 3), m.impressions
    (1.0, 1.0, 1)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class RankMetrics:
    """Mean metrics over scored impressions, with the counts behind them."""

    auc: float
    mrr: float
    ndcg5: float
    ndcg10: float
    impressions: int
    skipped_single_class: int
    candidates: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PerImpression:
    """Per-impression values; ``valid`` is False for single-class impressions (values NaN)."""

    auc: np.ndarray
    mrr: np.ndarray
    ndcg5: np.ndarray
    ndcg10: np.ndarray
    valid: np.ndarray


def _group_mean(values: np.ndarray, group_starts: np.ndarray, group_of: np.ndarray) -> np.ndarray:
    sizes = np.diff(np.append(group_starts, len(values)))
    return (np.add.reduceat(values, group_starts) / sizes)[group_of]


def per_impression(ptr: np.ndarray, labels: np.ndarray, scores: np.ndarray) -> PerImpression:
    """Metrics of each impression of a CSR batch.

    Args:
        ptr: [I+1] offsets; impression i owns rows ``ptr[i]:ptr[i+1]``.
        labels: [C] 0/1 labels.
        scores: [C] model scores (higher is better).
    """
    ptr = np.asarray(ptr, dtype=np.int64)
    labels = np.asarray(labels)
    scores = np.asarray(scores, dtype=np.float64)
    n_imp = len(ptr) - 1
    if len(labels) != ptr[-1] or len(scores) != ptr[-1]:
        raise ValueError(f"ptr ends at {ptr[-1]} but there are {len(labels)} labels and {len(scores)} scores")
    if np.any((labels != 0) & (labels != 1)):
        raise ValueError("labels must be 0 or 1 (unlabeled candidates cannot be scored)")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores must be finite")
    sizes = np.diff(ptr)
    if np.any(sizes == 0):
        raise ValueError("every impression needs at least one candidate")
    imp = np.repeat(np.arange(n_imp), sizes)
    order = np.lexsort((-scores, imp))  # by impression, then score descending
    y = labels[order].astype(np.float64)
    s = scores[order]
    pos = np.arange(len(y)) - ptr[imp]  # 0-based rank within the impression
    # tie groups: runs of equal score inside one impression
    new_group = np.ones(len(y), dtype=bool)
    new_group[1:] = (imp[1:] != imp[:-1]) | (s[1:] != s[:-1])
    starts = np.flatnonzero(new_group)
    group_of = np.cumsum(new_group) - 1

    n_pos = np.add.reduceat(y, ptr[:-1])
    n_neg = sizes - n_pos
    valid = (n_pos > 0) & (n_neg > 0)

    rr = _group_mean(1.0 / (pos + 1), starts, group_of)
    mrr = np.add.reduceat(y * rr, ptr[:-1]) / np.where(n_pos > 0, n_pos, 1)

    def ndcg(k: int) -> np.ndarray:
        disc = np.where(pos < k, 1.0 / np.log2(pos + 2), 0.0)
        dcg = np.add.reduceat((2.0**y - 1) * _group_mean(disc, starts, group_of), ptr[:-1])
        # ideal: all positives first (binary gains)
        cum = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(k) + 2))])
        ideal = cum[np.minimum(n_pos, k).astype(np.int64)]
        return dcg / np.where(ideal > 0, ideal, 1)

    # AUC from average ascending ranks (1 = lowest score), ties averaged
    asc_rank = _group_mean((sizes[imp] - pos).astype(np.float64), starts, group_of)
    rank_sum = np.add.reduceat(y * asc_rank, ptr[:-1])
    denom = np.where(valid, n_pos * n_neg, 1)
    auc = (rank_sum - n_pos * (n_pos + 1) / 2) / denom

    nan = np.full(n_imp, np.nan)
    return PerImpression(
        auc=np.where(valid, auc, nan),
        mrr=np.where(valid, mrr, nan),
        ndcg5=np.where(valid, ndcg(5), nan),
        ndcg10=np.where(valid, ndcg(10), nan),
        valid=valid,
    )


def rank_metrics(ptr: np.ndarray, labels: np.ndarray, scores: np.ndarray, mask: np.ndarray | None = None) -> RankMetrics:
    """Mean AUC, MRR, nDCG@5, nDCG@10 over the impressions of a CSR batch.

    Args:
        ptr: [I+1] CSR offsets.
        labels: [C] 0/1 labels.
        scores: [C] scores.
        mask: optional [I] boolean selection of impressions (a slice such as cold start).
    """
    per = per_impression(ptr, labels, scores)
    keep = per.valid if mask is None else per.valid & np.asarray(mask, dtype=bool)
    considered = len(per.valid) if mask is None else int(np.asarray(mask, dtype=bool).sum())
    n = int(keep.sum())

    def mean(a: np.ndarray) -> float:
        return float(a[keep].mean()) if n else float("nan")

    sizes = np.diff(np.asarray(ptr))
    return RankMetrics(
        auc=mean(per.auc), mrr=mean(per.mrr), ndcg5=mean(per.ndcg5), ndcg10=mean(per.ndcg10),
        impressions=n, skipped_single_class=considered - n, candidates=int(sizes[keep].sum()),
    )
