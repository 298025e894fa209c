"""Metrics against independent computations: sklearn, the official formulas, brute force over ties."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ip2_stream.eval.metrics import per_impression, rank_metrics


# the formulas of MIND's official evaluate.py, written out independently for the comparison
def official_dcg(y, s, k):
    order = np.argsort(s)[::-1]
    top = np.take(y, order[:k])
    return np.sum((2**top - 1) / np.log2(np.arange(len(top)) + 2))


def official_ndcg(y, s, k):
    return official_dcg(y, s, k) / official_dcg(y, y, k)


def official_mrr(y, s):
    order = np.argsort(s)[::-1]
    ranked = np.take(y, order)
    return np.sum(ranked / (np.arange(len(ranked)) + 1)) / np.sum(y)


def random_batch(rng, n_imp, max_len=15, ties=False):
    sizes = rng.integers(2, max_len, size=n_imp)
    ptr = np.concatenate([[0], np.cumsum(sizes)])
    labels = (rng.random(ptr[-1]) < 0.3).astype(np.int8)
    scores = rng.integers(0, 4, size=ptr[-1]).astype(float) if ties else rng.normal(size=ptr[-1])
    return ptr, labels, scores


def test_distinct_scores_match_sklearn_and_official_formulas():
    rng = np.random.default_rng(0)
    ptr, labels, scores = random_batch(rng, 300)
    per = per_impression(ptr, labels, scores)
    checked = 0
    for i in range(300):
        y, s = labels[ptr[i] : ptr[i + 1]], scores[ptr[i] : ptr[i + 1]]
        if 0 < y.sum() < len(y):
            assert per.auc[i] == pytest.approx(roc_auc_score(y, s), abs=1e-12)
            assert per.mrr[i] == pytest.approx(official_mrr(y, s), abs=1e-12)
            assert per.ndcg5[i] == pytest.approx(official_ndcg(y, s, 5), abs=1e-12)
            assert per.ndcg10[i] == pytest.approx(official_ndcg(y, s, 10), abs=1e-12)
            checked += 1
        else:
            assert not per.valid[i] and np.isnan(per.auc[i])
    assert checked > 200


def test_ties_equal_the_average_over_every_tie_breaking_order():
    rng = np.random.default_rng(1)
    ptr, labels, scores = random_batch(rng, 40, max_len=7, ties=True)
    per = per_impression(ptr, labels, scores)
    for i in range(40):
        y, s = labels[ptr[i] : ptr[i + 1]], scores[ptr[i] : ptr[i + 1]]
        if not 0 < y.sum() < len(y):
            continue
        # brute force: every order consistent with the scores, each equally likely
        rows = []
        for perm in itertools.permutations(range(len(y))):
            ranked = s[list(perm)]
            if np.all(np.diff(ranked) <= 0):  # a descending order of the scores
                strict = -np.arange(len(y), dtype=float)  # distinct scores reproducing this order
                yy = y[list(perm)]
                rows.append([official_mrr(yy, strict), official_ndcg(yy, strict, 5), official_ndcg(yy, strict, 10)])
        expected = np.mean(rows, axis=0)
        assert per.mrr[i] == pytest.approx(expected[0], abs=1e-12)
        assert per.ndcg5[i] == pytest.approx(expected[1], abs=1e-12)
        assert per.ndcg10[i] == pytest.approx(expected[2], abs=1e-12)
        assert per.auc[i] == pytest.approx(roc_auc_score(y, s), abs=1e-12)  # sklearn: ties count 1/2


def test_single_class_impressions_are_skipped_and_counted():
    ptr = np.array([0, 3, 5, 7])
    labels = np.array([1, 0, 0, 0, 0, 1, 1])
    scores = np.array([0.9, 0.1, 0.2, 0.5, 0.4, 0.3, 0.2])
    m = rank_metrics(ptr, labels, scores)
    assert m.impressions == 1 and m.skipped_single_class == 2 and m.candidates == 3
    assert (m.auc, m.mrr, m.ndcg5, m.ndcg10) == (1.0, 1.0, 1.0, 1.0)


def test_mask_selects_a_slice_and_constant_scores_give_half_auc():
    ptr = np.array([0, 3, 6])
    labels = np.array([1, 0, 0, 0, 0, 1])
    good = np.array([3.0, 2.0, 1.0, 3.0, 2.0, 1.0])
    m = rank_metrics(ptr, labels, good, mask=np.array([False, True]))
    assert m.impressions == 1 and m.auc == 0.0 and m.mrr == pytest.approx(1 / 3)
    flat = rank_metrics(ptr, labels, np.zeros(6))
    assert flat.auc == 0.5 and flat.mrr == pytest.approx((1 + 1 / 2 + 1 / 3) / 3)


def test_invalid_input_is_rejected_with_a_reason():
    with pytest.raises(ValueError, match="labels must be 0 or 1"):
        per_impression(np.array([0, 2]), np.array([1, -1]), np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="ptr ends at 3"):
        per_impression(np.array([0, 3]), np.array([1, 0]), np.array([0.1, 0.2]))
    with pytest.raises(ValueError, match="finite"):
        per_impression(np.array([0, 2]), np.array([1, 0]), np.array([np.nan, 0.2]))
