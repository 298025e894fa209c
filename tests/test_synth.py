"""The synthetic generator: MIND format, determinism, and the phenomena, measured on its output."""

from __future__ import annotations

import filecmp
import json
import re

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from ip2_stream.data import words
from ip2_stream.data.dataset import load_corpus
from ip2_stream.data.mind import parse_mind_time, read_behaviors_tsv, read_news_tsv
from ip2_stream.data.synth import SynthConfig, generate
from ip2_stream.eval.baselines import cold_start_mask, oracle_scores, popularity_scores, seen_entities
from ip2_stream.eval.metrics import rank_metrics

FILES = ("news.tsv", "behaviors.tsv", "entity_embedding.vec", "relation_embedding.vec", "truth.tsv")


@pytest.fixture(scope="module")
def small(small_data, tmp_path_factory):
    return load_corpus(small_data, ("train", "dev"), tmp_path_factory.mktemp("cache"))


def entities_table(root):
    lines = (root / "entities.tsv").read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    return [dict(zip(header, line.split("\t"))) for line in lines[1:]]


def test_same_seed_same_bytes_other_seed_other_data(tiny_data, tmp_path):
    generate(SynthConfig.from_preset("tiny", seed=7), tmp_path / "again")
    generate(SynthConfig.from_preset("tiny", seed=8), tmp_path / "other")
    for split in ("train", "dev"):
        for name in FILES:
            assert filecmp.cmp(tiny_data / split / name, tmp_path / "again" / split / name, shallow=False), name
    assert not filecmp.cmp(tiny_data / "dev" / "behaviors.tsv", tmp_path / "other" / "dev" / "behaviors.tsv", shallow=False)


def test_files_are_strict_mind_format(tiny_data):
    for split in ("train", "dev"):
        news = read_news_tsv(tiny_data / split / "news.tsv")  # strict: raises on any bad line
        beh = read_behaviors_tsv(tiny_data / split / "behaviors.tsv")
        assert news.bad_lines == 0 and beh.bad_lines == 0 and beh.table.num_rows > 0
        raw = (tiny_data / split / "behaviors.tsv").read_text(encoding="utf-8").splitlines()[0].split("\t")
        assert re.fullmatch(r"\d{1,2}/\d{1,2}/\d{4} \d{1,2}:\d\d:\d\d [AP]M", raw[2])
        assert re.fullmatch(r"(N\d+-[01] ?)+", raw[4])
        truth = (tiny_data / split / "truth.tsv").read_text(encoding="utf-8").splitlines()
        assert len(truth) == beh.table.num_rows
        assert [len(t.split("\t")[1].split()) for t in truth] == [len(c) for c in beh.table.column("candidates").to_pylist()]


def test_titles_are_real_words_naming_their_entities(tiny_data):
    vocabulary = {w.lower() for w in words.VERBS_PRESENT + words.VERBS_PAST + words.ADJECTIVES + words.OPENERS + words.CONNECTORS}
    for _, (_, nouns) in words.TOPICS.items():
        vocabulary.update(nouns)
    vocabulary = {part for w in vocabulary for part in w.split()} | {"the", "and", "that", "week"}
    rows = [line.split("\t") for line in (tiny_data / "train" / "news.tsv").read_text(encoding="utf-8").splitlines()]
    named = 0
    for row in rows:
        title, mentions = row[3], json.loads(row[6])
        text = title
        for m in mentions:
            for off in m["OccurrenceOffsets"]:
                assert title[off : off + len(m["Label"])] == m["Label"]
            text = text.replace(m["Label"], " ")
            named += 1
        for token in re.findall(r"[A-Za-z]+", text):
            assert token.lower() in vocabulary, (token, title)
    assert named >= len(rows) * 0.8


def test_mind_like_shape_at_small_preset(small):
    ctrs, every_clicked = [], []
    for beh in small.splits.values():
        clicks = np.add.reduceat(beh.labels.astype(np.int64), beh.cand_ptr[:-1])
        every_clicked.append(bool((clicks >= 1).all()))
        ctrs.append(beh.labels.mean())
    assert all(every_clicked)
    assert 0.03 <= np.mean(ctrs) <= 0.06
    sizes = np.diff(small.splits["train"].cand_ptr)
    assert 20 <= sizes.mean() <= 40 and sizes.max() >= 4 * np.median(sizes)  # long tail
    hist = np.diff(small.splits["train"].hist_ptr)
    assert hist.max() >= 50 and (hist == 0).sum() > 0
    days = np.unique(small.splits["train"].time // 86400)
    assert len(days) >= 4


def test_new_entities_every_day_and_popularity_shifts(small_data, small):
    ents = entities_table(small_data)
    births = {}
    for e in ents:
        if e["known_at_start"] == "0":
            day = parse_mind_time(e["birth_time"]) // 86400
            births[day] = births.get(day, 0) + 1
    assert len(births) == 6 and min(births.values()) > 0  # every impression day
    # mentions per entity among candidates shown on the first and the last train day
    beh = small.splits["train"]
    title_ents = small.column("title_entities")
    day = beh.time // 86400

    def top(d):
        shown = beh.cand_idx[np.repeat(day == d, np.diff(beh.cand_ptr))]
        counts: dict[str, int] = {}
        for n in shown:
            for e in title_ents[n]:
                counts[e] = counts.get(e, 0) + 1
        return {e for e, _ in sorted(counts.items(), key=lambda kv: -kv[1])[:30]}

    assert len(top(day.min()) & top(day.max())) < 15


def test_dev_has_a_meaningful_cold_start_share(small):
    cold = cold_start_mask(small, "dev", seen_entities(small, "train"))
    assert cold.mean() >= 0.15


def _history_overlap_scores(corpus, role, key):
    """Heuristic scorers built only from the observed data, to measure what drives clicks."""
    beh = corpus.splits[role]
    col = corpus.column(key)
    feats = [set(v) if isinstance(v, list) else {v} for v in col]
    out = np.zeros(len(beh.cand_idx))
    for i in range(len(beh)):
        seen: dict = {}
        for n in beh.history(i):
            for f in feats[n]:
                seen[f] = seen.get(f, 0) + 1
        total = max(len(beh.history(i)), 1)
        lo = beh.cand_ptr[i]
        for j, n in enumerate(beh.candidates(i)):
            out[lo + j] = sum(seen.get(f, 0) for f in feats[n]) / total
    return out


def test_clicks_depend_on_entities_and_topics(small):
    beh = small.splits["dev"]
    ent = rank_metrics(beh.cand_ptr, beh.labels, _history_overlap_scores(small, "dev", "title_entities")).auc
    topic = rank_metrics(beh.cand_ptr, beh.labels, _history_overlap_scores(small, "dev", "category")).auc
    pop = rank_metrics(beh.cand_ptr, beh.labels, popularity_scores(small, "dev")).auc
    oracle = rank_metrics(beh.cand_ptr, beh.labels, oracle_scores(small, "dev")).auc
    assert ent > 0.55 and topic > 0.55
    assert oracle > max(ent, topic, pop) + 0.05  # room for a model to learn
    truth = oracle_scores(small, "dev")
    assert roc_auc_score(beh.labels, truth) > 0.7


def _early_late_category_shift(root, cache):
    corpus = load_corpus(root, ("train", "dev"), cache)
    cats = np.array(corpus.column("category"))
    names = sorted(set(cats))
    rows = []
    for beh in corpus.splits.values():
        clicked = beh.labels == 1
        row_imp = np.repeat(np.arange(len(beh)), np.diff(beh.cand_ptr))
        rows.append((beh.user[row_imp[clicked]], beh.time[row_imp[clicked]], cats[beh.cand_idx[clicked]]))
    users, times, c = (np.concatenate(x) for x in zip(*rows))
    mid = np.median(times)
    shifts = []
    for u in np.unique(users):
        early, late = (users == u) & (times < mid), (users == u) & (times >= mid)
        if early.sum() >= 8 and late.sum() >= 8:
            p = np.array([(c[early] == k).mean() for k in names])
            q = np.array([(c[late] == k).mean() for k in names])
            shifts.append(0.5 * np.abs(p - q).sum())
    return float(np.mean(shifts))


def test_user_interests_drift(tmp_path):
    base = dict(users=600, news=2500, impressions=9000, days=6, initial_entities=400, new_entities_per_day=20)
    generate(SynthConfig.from_preset("small", seed=3, **base, interest_drift_per_day=0.0), tmp_path / "still")
    generate(SynthConfig.from_preset("small", seed=3, **base, interest_drift_per_day=0.5), tmp_path / "drift")
    still = _early_late_category_shift(tmp_path / "still", tmp_path / "c")
    drift = _early_late_category_shift(tmp_path / "drift", tmp_path / "c")
    assert drift > still + 0.03
