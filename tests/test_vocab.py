from __future__ import annotations

import pytest

from ip2_stream.data.vocab import PAD_ID, Vocab


def test_build_gives_each_kind_its_own_range_without_collisions():
    v = Vocab.build(["Q2", "Q1", "Q2"], ["sports", "news"], ["golf"])
    assert [v.get("entity", "Q1"), v.get("entity", "Q2")] == [1, 2]
    assert [v.get("category", "news"), v.get("category", "sports"), v.get("subcategory", "golf")] == [3, 4, 5]
    assert len(v) == 6 and v.token(PAD_ID) == ("pad", "")
    # same key, different kinds: different ids
    v.add("category", "Q1")
    assert v.get("category", "Q1") != v.get("entity", "Q1")


def test_growth_appends_and_never_renumbers():
    v = Vocab.build(["Q1", "Q2"], ["news"], ["newsus"])
    before = {key: v.get("entity", key) for key in ("Q1", "Q2")}
    new = v.add_many("entity", ["Q2", "Q9", "Q8", "Q9"])
    assert new == ["Q9", "Q8"]
    assert [v.get("entity", "Q9"), v.get("entity", "Q8")] == [5, 6]
    assert {key: v.get("entity", key) for key in ("Q1", "Q2")} == before


def test_encode_news_drops_or_grows_unknown_entities_and_caps():
    v = Vocab.build(["Q1"], ["news"], ["newsus"])
    assert v.encode_news("news", "newsus", ["Q1", "Q7", "Q1"]) == [2, 3, 1]
    assert v.encode_news("news", "nosuchsub", []) == [2, PAD_ID]
    assert v.encode_news("news", "newsus", ["Q1", "Q7"], grow=True) == [2, 3, 1, 4]
    assert len(v.encode_news("news", "newsus", [f"Q{i}" for i in range(40)], max_entities=16, grow=True)) == 18


def test_round_trip_to_disk(tmp_path):
    v = Vocab.build(["Q1", "Q2"], ["news"], ["newsus"])
    v.add("entity", "Q3")
    v.save(tmp_path / "vocab.json")
    back = Vocab.load(tmp_path / "vocab.json")
    assert back == v and back.get("entity", "Q3") == 5
    with pytest.raises(ValueError, match="not an ip2-stream vocabulary"):
        Vocab.from_dict({"tokens": []})
