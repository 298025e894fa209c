"""Score a split, overall and on the cold-start slice, next to the oracle when there is one."""

from __future__ import annotations

import numpy as np

from ip2_stream.data.dataset import Corpus
from ip2_stream.errors import DataError
from ip2_stream.eval.baselines import cold_start_mask, oracle_scores, seen_entities
from ip2_stream.eval.metrics import rank_metrics


def evaluation_report(corpus: Corpus, role: str, scores: np.ndarray, name: str) -> dict:
    """Metrics of ``scores`` on split ``role``: overall, cold start, and the oracle AUC.

    As in the IP2 protocol, impressions with an empty click history are not scored (they are
    counted). The cold-start slice holds impressions with at least one candidate carrying a
    title entity never seen in the train split (needs a loaded ``train`` split).

    Args:
        corpus: the loaded corpus.
        role: split to score (``dev`` usually).
        scores: [C] one score per candidate row of that split.
        name: what produced the scores (a baseline or a checkpoint).
    """
    beh = corpus.splits[role]
    if not beh.labeled:
        raise DataError(f"split {role!r} has unlabeled candidates (a test split cannot be evaluated)")
    if len(scores) != len(beh.cand_idx):
        raise ValueError(f"{len(scores)} scores for {len(beh.cand_idx)} candidates")
    # the IP2 protocol: impressions whose user has no click history are not scored
    has_history = np.diff(beh.hist_ptr) > 0
    report: dict = {"scorer": name, "split": role, "impressions_total": len(beh),
                    "impressions_empty_history": int((~has_history).sum())}
    report["overall"] = rank_metrics(beh.cand_ptr, beh.labels, scores, mask=has_history).to_dict()
    oracle = None
    if corpus.split_dirs[role].has_truth:
        oracle = oracle_scores(corpus, role)
        report["oracle_auc"] = rank_metrics(beh.cand_ptr, beh.labels, oracle, mask=has_history).auc
    if "train" in corpus.splits and role != "train":
        cold = cold_start_mask(corpus, role, seen_entities(corpus, "train")) & has_history
        report["cold_start_impressions"] = int(cold.sum())
        report["cold_start"] = rank_metrics(beh.cand_ptr, beh.labels, scores, mask=cold).to_dict()
        if oracle is not None:
            report["cold_start"]["oracle_auc"] = rank_metrics(beh.cand_ptr, beh.labels, oracle, mask=cold).auc
    return report
