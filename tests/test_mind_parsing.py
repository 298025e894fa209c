"""Parsing real-format MIND files: quoting, entities, times, bad lines, the Parquet cache."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from conftest import write_split
from ip2_stream.data.dataset import MindSplit, find_splits, load_corpus
from ip2_stream.data.mind import (
    UNLABELED,
    format_mind_time,
    parse_mind_time,
    read_behaviors_tsv,
    read_embedding_vec,
    read_news_tsv,
)
from ip2_stream.errors import DataError, MalformedLineError

ENT_A = {"Label": "PGA Tour", "Type": "O", "WikidataId": "Q910409", "Confidence": 1.0, "OccurrenceOffsets": [17], "SurfaceForms": ["PGA Tour"]}
ENT_B = {"Label": "Tiger Woods", "Type": "P", "WikidataId": "Q10993", "Confidence": 1.0, "OccurrenceOffsets": [0], "SurfaceForms": ["Tiger Woods"]}


def news_line(nid: str, title: str, entities: list | str = "[]", category: str = "sports") -> str:
    ents = entities if isinstance(entities, str) else json.dumps(entities)
    return "\t".join([nid, category, "golf", title, "An abstract.", f"https://x/{nid}", ents, "[]"])


def test_news_quotes_are_kept_verbatim_and_entities_ordered_by_offset(tmp_path):
    title = 'Tiger Woods "wins" PGA Tour event\'s "big one'
    path = write_split(tmp_path / "s", [news_line("N1", title, [ENT_A, ENT_B]), news_line("N2", "No entities", "")], [])
    table = read_news_tsv(path / "news.tsv").table
    assert table.column("title").to_pylist() == [title, "No entities"]
    # ENT_B occurs first in the title (offset 0) although listed second
    assert table.column("title_entities").to_pylist() == [["Q10993", "Q910409"], []]
    assert table.column("title_entity_labels").to_pylist()[0] == ["Tiger Woods", "PGA Tour"]


def test_behaviors_times_histories_and_labels(tmp_path):
    lines = [
        "1\tU1\t11/15/2019 12:05:01 AM\tN1 N2\tN3-1 N4-0",
        "2\tU2\t11/15/2019 12:30:00 PM\t\tN3-0 N4-1",  # empty history
        "3\tU3\t11/15/2019 1:00:00 PM\tN1\tN3 N4",  # test split: unlabeled
    ]
    path = write_split(tmp_path / "s", [], lines)
    table = read_behaviors_tsv(path / "behaviors.tsv").table
    assert table.column("history").to_pylist() == [["N1", "N2"], [], ["N1"]]
    assert table.column("candidates").to_pylist()[0] == ["N3", "N4"]
    assert table.column("labels").to_pylist() == [[1, 0], [0, 1], [UNLABELED, UNLABELED]]
    seconds = table.column("time").to_numpy().astype("int64")
    # 12 AM is midnight, 12 PM is noon
    assert list(np.diff(seconds)) == [12 * 3600 + 30 * 60 - 301, 1800]


@pytest.mark.parametrize("text", ["11/15/2019 12:05:01 AM", "1/2/2020 9:05:58 PM", "12/31/2019 11:59:59 PM"])
def test_time_round_trip(text):
    assert format_mind_time(parse_mind_time(text)) == text


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("1\tU1\t11/15/2019 8:00:00 AM\tN1", "expected 5 tab-separated columns, found 4"),
        ("x\tU1\t11/15/2019 8:00:00 AM\tN1\tN2-1", "impression id 'x' is not an integer"),
        ("1\tU1\t2019-11-15 08:00\tN1\tN2-1", "is not M/D/YYYY h:mm:ss AM|PM"),
        ("1\tU1\t11/15/2019 8:00:00 AM\tN1\tN2-1 N3", "mixes labeled and unlabeled"),
        ("1\tU1\t11/15/2019 8:00:00 AM\tN1\tN2-7", "is not Nxxx-0, Nxxx-1"),
        ("1\tU1\t11/15/2019 8:00:00 AM\tN1\t", "no candidates"),
    ],
)
def test_bad_behaviors_line_names_file_line_and_reason(tmp_path, line, reason):
    path = write_split(tmp_path / "s", [], ["1\tU0\t11/15/2019 8:00:00 AM\t\tN2-1", line])
    with pytest.raises(MalformedLineError) as err:
        read_behaviors_tsv(path / "behaviors.tsv")
    assert err.value.lineno == 2
    assert err.value.path.name == "behaviors.tsv"
    assert reason in str(err.value)


def test_bad_news_lines_fail_or_are_counted_with_skip_bad(tmp_path):
    lines = [
        news_line("N1", "Fine"),
        news_line("N2", "Broken json", '[{"WikidataId": '),
        "N3\tsports\tgolf\tonly four columns",
        news_line("N1", "Duplicate id"),
        news_line("N4", "Also fine"),
    ]
    path = write_split(tmp_path / "s", lines, [])
    with pytest.raises(MalformedLineError, match=r"news.tsv:2: title_entities is not valid JSON"):
        read_news_tsv(path / "news.tsv")
    result = read_news_tsv(path / "news.tsv", skip_bad=True)
    assert result.table.column("news_id").to_pylist() == ["N1", "N4"]
    assert result.bad_lines == 3
    assert any("duplicate news id N1 (first on line 1)" in e for e in result.bad_examples)


def test_embedding_vec_with_trailing_tabs_and_dimension_check(tmp_path):
    good = tmp_path / "entity_embedding.vec"
    good.write_text("Q1\t0.1\t0.2\t0.3\t\nQ2\t-1\t0\t1e-3\t\n", encoding="utf-8")
    table = read_embedding_vec(good).table
    assert table.column("id").to_pylist() == ["Q1", "Q2"]
    vecs = np.asarray(table.column("vector").combine_chunks().flatten()).reshape(2, 3)
    np.testing.assert_allclose(vecs[1], [-1, 0, 1e-3])
    bad = tmp_path / "bad.vec"
    bad.write_text("Q1\t0.1\t0.2\t\nQ2\t0.1\t\n", encoding="utf-8")
    with pytest.raises(MalformedLineError, match="bad.vec:2: vector has 1 values, expected 2"):
        read_embedding_vec(bad)


def test_parquet_cache_skips_parsing_on_unchanged_input(tmp_path, cache_dir):
    path = write_split(tmp_path / "MINDsmall_train", [news_line("N1", "A"), "broken"], ["1\tU1\t11/15/2019 8:00:00 AM\t\tN1-1"])
    first = MindSplit(path, cache_dir, skip_bad=True)
    assert first.news().num_rows == 1
    assert first.from_cache == {"news.tsv": False} and first.bad_lines == {"news.tsv": 1}

    def no_parsing(*_args, **_kwargs):
        raise AssertionError("parsed although the cache is fresh")

    second = MindSplit(path, cache_dir, skip_bad=True)
    second._load("news.tsv", "news", no_parsing)
    assert second.from_cache == {"news.tsv": True}
    assert second.bad_lines == {"news.tsv": 1}  # the skip count survives the cache

    # a changed file is parsed again
    (path / "news.tsv").write_text(news_line("N1", "A") + "\n" + news_line("N2", "B") + "\n", encoding="utf-8")
    os.utime(path / "news.tsv", ns=(1, 10**18))
    third = MindSplit(path, cache_dir, skip_bad=True)
    assert third.news().num_rows == 2 and third.from_cache["news.tsv"] is False


def test_find_splits_understands_mind_folder_names(tmp_path):
    for name in ("MINDsmall_train", "MINDsmall_dev"):
        write_split(tmp_path / name, [news_line("N1", "A")], ["1\tU1\t11/15/2019 8:00:00 AM\t\tN1-1"])
    (tmp_path / "unrelated").mkdir()
    assert {k: v.name for k, v in find_splits(tmp_path).items()} == {"dev": "MINDsmall_dev", "train": "MINDsmall_train"}
    with pytest.raises(DataError, match="no MIND split found"):
        find_splits(tmp_path / "unrelated")


def test_corpus_merges_news_and_rejects_dangling_references(tmp_path, cache_dir):
    write_split(tmp_path / "train", [news_line("N1", "A"), news_line("N2", "B")], ["1\tU1\t11/15/2019 8:00:00 AM\tN1\tN2-1 N1-0"])
    write_split(tmp_path / "dev", [news_line("N2", "B"), news_line("N3", "C")], ["2\tU1\t11/16/2019 8:00:00 AM\t\tN3-1 N2-0"])
    corpus = load_corpus(tmp_path, cache_dir=cache_dir)
    assert corpus.num_news == 3
    dev = corpus.splits["dev"]
    assert [corpus.column("news_id")[i] for i in dev.candidates(0)] == ["N3", "N2"]
    assert list(dev.candidate_labels(0)) == [1, 0]
    assert len(dev.history(0)) == 0
    write_split(tmp_path / "bad" / "train", [news_line("N1", "A")], ["1\tU1\t11/15/2019 8:00:00 AM\tN9\tN1-1"])
    with pytest.raises(DataError, match=r"1 history entries reference news missing from news.tsv \(e.g. N9\)"):
        load_corpus(tmp_path / "bad", cache_dir=cache_dir)
