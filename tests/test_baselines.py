from __future__ import annotations

import numpy as np
import pytest

from conftest import write_split
from ip2_stream.data.dataset import load_corpus
from ip2_stream.errors import DataError
from ip2_stream.eval.baselines import oracle_scores, popularity_scores, random_scores
from ip2_stream.eval.report import evaluation_report


def news(nid):
    return "\t".join([nid, "news", "newsus", f"Title {nid}", "", "", "[]", "[]"])


@pytest.fixture()
def corpus(tmp_path):
    ns = [news(f"N{i}") for i in range(1, 5)]
    write_split(tmp_path / "train", ns, [
        "1\tU1\t11/10/2019 8:00:00 AM\t\tN1-1 N2-0",
        "2\tU2\t11/10/2019 9:00:00 AM\tN1\tN1-1 N3-0",
    ])
    write_split(tmp_path / "dev", ns, [
        "4\tU1\t11/11/2019 10:00:00 AM\tN1\tN1-0 N2-1 N3-0",  # later than impression 3
        "3\tU3\t11/11/2019 9:00:00 AM\tN1\tN1-0 N2-1 N4-0",
    ])
    return load_corpus(tmp_path, ("train", "dev"), tmp_path / "cache")


def test_popularity_counts_only_clicks_before_the_impression(corpus):
    dev = corpus.splits["dev"]
    assert list(dev.impression_id) == [3, 4]  # sorted by time
    scores = popularity_scores(corpus, "dev")
    # impression 3 (09:00): N1 has 2 train clicks, N2 none yet, N4 none
    assert list(scores[dev.cand_ptr[0] : dev.cand_ptr[1]]) == [2.0, 0.0, 0.0]
    # impression 4 (10:00): N2's click in impression 3 is now known
    assert list(scores[dev.cand_ptr[1] : dev.cand_ptr[2]]) == [2.0, 1.0, 0.0]


def test_random_is_seeded_and_oracle_needs_truth(corpus):
    assert np.array_equal(random_scores(corpus, "dev", seed=3), random_scores(corpus, "dev", seed=3))
    assert not np.array_equal(random_scores(corpus, "dev", seed=3), random_scores(corpus, "dev", seed=4))
    with pytest.raises(DataError, match="no truth.tsv"):
        oracle_scores(corpus, "dev")


def test_report_on_synthetic_data_orders_the_baselines(tiny_data, tmp_path):
    corpus = load_corpus(tiny_data, ("train", "dev"), tmp_path / "cache")
    reports = {name: evaluation_report(corpus, "dev", fn(corpus, "dev"), name)
               for name, fn in (("random", random_scores), ("popularity", popularity_scores), ("oracle", oracle_scores))}
    assert reports["oracle"]["overall"]["auc"] == pytest.approx(reports["random"]["oracle_auc"])
    assert reports["oracle"]["overall"]["auc"] > reports["popularity"]["overall"]["auc"] > reports["random"]["overall"]["auc"] - 0.02
    assert 0.4 < reports["random"]["overall"]["auc"] < 0.6
    assert reports["random"]["cold_start"]["impressions"] == reports["random"]["cold_start_impressions"] > 0
