"""Stream pieces without a broker or Ray: codec, registry, news store, click join, online SEE steps."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest
import torch

from ip2_stream.data.vocab import Vocab
from ip2_stream.model.checkpoint import load_checkpoint, save_checkpoint
from ip2_stream.model.ip2 import IP2Config, build_model
from ip2_stream.model.text import BottomCache, TitleEncoder, load_hf
from ip2_stream.online.learners import (ClickJoiner, Joined, OnlineConfig, SEESchedule, SignatureUpdater, UserTowerLearner, click_rows,
                                       news_vectors, see_batches, see_summary)
from ip2_stream.online.live import learner_state
from ip2_stream.online.store import NewsStore, StoreFeatures
from ip2_stream.registry import Registry, RegistryError
from ip2_stream.stream.records import ClickRecord, DecodeError, ImpressionRecord, NewsRecord, decode, encode
from ip2_stream.train.losses import info_nce

NEWS = NewsRecord(news_id="N1", category="sports", subcategory="golf", title="Tiger Woods wins", entities=("Q1", "Q2"),
                  entity_labels=("Tiger Woods", "Masters"), time=100)


def test_codec_round_trips_every_record_type():
    imp = ImpressionRecord(impression_id=3, user_id="U1", time=5, history=("N1",), candidates=("N2", "N3"))
    click = ClickRecord(impression_id=3, user_id="U1", time=9, clicked=("N2",), shown=("N2", "N3"))
    for record, topic in ((NEWS, "news"), (imp, "impression"), (click, "click")):
        assert decode(topic, encode(record)) == record


@pytest.mark.parametrize(("raw", "reason"), [
    (b"\xff\xfe", "not JSON"),
    (b"[1, 2]", "expected a JSON object, got list"),
    (b'{"schema": "weather", "version": 1}', "unknown schema 'weather'"),
    (b'{"schema": "click", "version": 1, "impression_id": 1, "user_id": "U", "time": 1, "shown": ["N1"]}',
     "schema 'click' on a topic that carries 'news'"),
    (b'{"schema": "news", "version": 2}', "unsupported news schema version 2"),
    (b'{"schema": "news", "version": 1, "news_id": "N1", "category": "x", "time": 1}', "invalid news: title: Field required"),
    (b'{"schema": "news", "version": 1, "news_id": "N1", "category": "x", "title": "t", "time": "soon"}', "invalid news: time"),
    (b'{"schema": "news", "version": 1, "news_id": "N1", "category": "x", "title": "t", "time": 1, "extra": 1}', "invalid news: extra"),
    (None, "empty message"),
])
def test_decode_returns_reasons_never_raises(raw, reason):
    result = decode("news", raw)
    assert isinstance(result, DecodeError) and reason in result.reason


def test_oversized_messages_are_rejected_unread():
    result = decode("news", encode(NEWS), max_bytes=10)
    assert isinstance(result, DecodeError) and "exceeds the 10-byte limit" in result.reason


def test_news_store_grows_vocab_ignores_repeats_and_round_trips(tmp_path):
    store = NewsStore(Vocab.build(["Q1"], ["sports"], ["golf"]))
    assert store.add(NEWS) == ["Q2"]
    assert store.add(NEWS) == []  # a replayed news item changes nothing
    other = NewsRecord(news_id="N2", category="news", title="Storm", entities=("Q3",), time=200)
    assert store.add(other) == ["Q3"]
    assert store.vocab.get("entity", "Q1") == 1 and store.entity_sequence(0)[2:] == [1, store.vocab.get("entity", "Q2")]
    store.snapshot(tmp_path, {"news:0": 5})
    back, offsets = NewsStore.restore(tmp_path)
    assert offsets == {"news:0": 5} and back.vocab == store.vocab and back.records == store.records
    assert back.entity_first_seen == {"Q1": 100.0, "Q2": 100.0, "Q3": 200.0}
    assert back.seqs_of(["N2", "N9"]).tolist() == [1, -1]


def test_click_join_either_order_expiry_and_state():
    joiner = ClickJoiner(window_s=100)
    imp = ImpressionRecord(impression_id=1, user_id="U", time=10, history=("N0",), candidates=("N1", "N2"))
    click = ClickRecord(impression_id=1, user_id="U", time=10, clicked=("N1",), shown=("N1", "N2"))
    assert joiner.add(imp) is None and joiner.add(click) == Joined(imp, click)
    late = ClickRecord(impression_id=2, user_id="U", time=20, clicked=(), shown=("N1",))
    assert joiner.add(late) is None
    restored = ClickJoiner.from_state(100, json.loads(json.dumps(joiner.state())))
    assert restored.clicks == joiner.clicks
    assert restored.expire(watermark=119) == 0 and restored.expire(watermark=121) == 1 and restored.expired == 1


def test_click_rows_use_in_impression_negatives():
    imp = ImpressionRecord(impression_id=1, user_id="U", time=1, history=("H1", "H2"), candidates=tuple(f"N{i}" for i in range(7)))
    click = ClickRecord(impression_id=1, user_id="U", time=1, clicked=("N0", "N3"), shown=imp.candidates)
    rows = click_rows([Joined(imp, click)], negatives=4, history_len=1, rng=np.random.default_rng(0))
    assert [r[1][0] for r in rows] == ["N0", "N3"]
    for hist, cands in rows:
        assert hist == ["H2"] and len(set(cands[1:])) == 4 and not {"N0", "N3"} & set(cands[1:])
    short = ClickRecord(impression_id=1, user_id="U", time=1, clicked=("N0",), shown=("N0", "N1", "N2"))
    assert click_rows([Joined(imp, short)], 4, 5, np.random.default_rng(0)) == []


@pytest.fixture()
def small_model(tiny_encoder_path):
    cfg = IP2Config(text_encoder=str(tiny_encoder_path), trainable_layers=0, max_title_len=12, news_dim=16, entity_dim=8,
                    see_heads=2, see_ff=16, user_heads=4, history_len=5)
    encoder = TitleEncoder(*load_hf(str(tiny_encoder_path)), trainable_layers=0, max_len=12)
    torch.manual_seed(0)
    return cfg, encoder


def test_registry_merges_parts_keeps_the_longer_vocab_and_rolls_back(small_model, tmp_path):
    cfg, encoder = small_model
    vocab = Vocab.build(["Q1"], ["news"], ["newsus"])
    base = build_model(cfg, encoder, len(vocab))
    save_checkpoint(tmp_path / "base", base, cfg, vocab)
    reg = Registry(tmp_path / "reg")
    assert reg.publish(tmp_path / "base", ("all",), promote=True) == 1
    # an entity learner grows the vocabulary and changes the entity tower
    grown = Vocab.from_dict(vocab.to_dict())
    grown.add("entity", "Q9")
    see_model = build_model(cfg, encoder, len(grown))
    save_checkpoint(tmp_path / "see", see_model, cfg, grown)
    # a user learner changes only its towers, with the old vocabulary
    user_model = load_checkpoint(tmp_path / "base", encoder=encoder).model
    with torch.no_grad():
        for p in user_model.user.parameters():
            p.add_(1.0)
    save_checkpoint(tmp_path / "user", user_model, cfg, vocab)
    assert reg.publish(tmp_path / "see", ("entity",), note="1 new entity", promote=True) == 2
    assert reg.publish(tmp_path / "user", ("user",), promote=True) == 3
    merged = load_checkpoint(reg.get(3).path, encoder=encoder)
    assert merged.vocab == grown  # the longer vocabulary wins
    assert len(merged.model.news.entity.table) == len(grown)
    for (name, a), b in zip(merged.model.user.named_parameters(), user_model.user.parameters()):
        assert torch.equal(a, b), name
    torch.testing.assert_close(merged.model.news.entity.table.weight, see_model.news.entity.table.weight)
    assert [v.parent for v in reg.versions()] == [None, 1, 2] and reg.get(2).note == "1 new entity"
    assert reg.promoted().version == 3 and reg.rollback() == 2 and reg.promoted().version == 2
    with pytest.raises(RegistryError, match="no model version 7"):
        reg.promote(7)
    with pytest.raises(RegistryError, match="unknown model part"):
        reg.publish(tmp_path / "user", ("weights",))


def test_registry_prune_keeps_recent_promoted_and_each_learners_state(small_model, tmp_path):
    cfg, encoder = small_model
    vocab = Vocab.build(["Q1"], ["news"], ["newsus"])
    model = build_model(cfg, encoder, len(vocab))
    reg = Registry(tmp_path / "reg")
    save_checkpoint(tmp_path / "base", model, cfg, vocab)
    reg.publish(tmp_path / "base", ("all",), promote=True)  # v1
    save_checkpoint(tmp_path / "see", model, cfg, vocab, learner_state={"see": {"cursor": 7}})
    reg.publish(tmp_path / "see", ("entity",))  # v2: the SEE updater's only version
    for k in range(6):  # v3..v8 by the trainer, v4 promoted
        save_checkpoint(tmp_path / "user", model, cfg, vocab, learner_state={"trainer": {"ledger": [k]}})
        reg.publish(tmp_path / "user", ("user",), promote=k == 1)
    assert reg.prune(keep=2) == [3, 5, 6]
    # the last two promotions (v1, v4), the SEE updater's state (v2), the newest two (v7, v8)
    assert [v.version for v in reg.versions()] == [1, 2, 4, 7, 8]
    assert sorted(p.name for p in (tmp_path / "reg" / "versions").iterdir()) == ["v000001", "v000002", "v000004", "v000007", "v000008"]
    assert learner_state(reg, "see") == {"cursor": 7} and learner_state(reg, "trainer") == {"ledger": [5]}
    assert reg.promoted().version == 4 and reg.prune(keep=2) == []
    reg.promote(8)
    assert reg.prune(keep=2) == [1]  # out of rollback reach now
    assert reg.rollback() == 4
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        reg.rollback()
    assert reg.publish(tmp_path / "user", ("user",)) == 9  # numbers keep counting


KNOWN_TITLES = ["Rangers win the title", "Storm hits Denver", "Bank profits rise", "Chef opens bakery", "Senate passes budget",
                "Actor wins award", "Flu cases climb", "New phone unveiled", "Team fires coach", "Rates stay flat"]
FRESH_TITLES = ["Zorvath Kellan wins playoff", "Qelbar floods coastal towns", "Vendrix shares tumble"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_signature_update_moves_new_entities_to_their_titles_and_keeps_known_news(small_model, seed):
    cfg, encoder = small_model
    vocab = Vocab.build([f"Q{i}" for i in range(len(KNOWN_TITLES))] + ["Q900", "Q901"], ["sports", "news"], ["golf", "newsus"])
    torch.manual_seed(seed)
    model = build_model(cfg, encoder, len(vocab)).eval()  # Q900, Q901: rows no news uses
    store = NewsStore(vocab)
    for i, title in enumerate(KNOWN_TITLES + FRESH_TITLES):  # the fresh news carry entities the model never saw
        store.add(NewsRecord(news_id=f"N{i}", category=("sports", "news")[i % 2], subcategory=("golf", "newsus")[i % 2],
                             title=title, entities=(f"Q{i}",), time=i))
    feats = StoreFeatures(store, BottomCache(encoder))
    known, fresh = feats.batch(range(len(KNOWN_TITLES))), feats.batch(range(len(KNOWN_TITLES), len(store)))
    twin = SignatureUpdater(copy.deepcopy(model), OnlineConfig(), seed=seed)
    updater = SignatureUpdater(model, OnlineConfig(), seed=seed)  # the default cadence and step sizes
    old_rows = model.news.entity.table.weight.detach().clone()
    assert updater.grow_to(len(store.vocab)) == len(FRESH_TITLES) and twin.grow_to(len(store.vocab)) == len(FRESH_TITLES)
    twin.model.load_state_dict(model.state_dict())  # same grown rows

    def vectors(batch):
        with torch.no_grad():
            return news_vectors(model.eval(), batch)

    def cosines(batch):
        return torch.nn.functional.cosine_similarity(*vectors(batch))

    fresh_before, known_r_e = cosines(fresh), vectors(known)[1]
    updater.learn_many(fresh, replay=known)
    fresh_after = cosines(fresh)
    # every fresh item's signature is closer to its own title than before, as reported
    assert (fresh_after > fresh_before).all(), (fresh_before, fresh_after)
    assert updater.last_alignment == pytest.approx((float(fresh_before.mean()), float(fresh_after.mean())), abs=1e-5)
    # known news barely move (the replay anchor and the small shared learning rate), as reported
    drift = 1 - torch.nn.functional.cosine_similarity(known_r_e, vectors(known)[1])
    assert updater.last_drift == pytest.approx(float(drift.mean()), abs=1e-5) and float(drift.max()) < 0.05
    # rows of entities outside the batch never move; an update is repeatable from the same state and seed
    unused = [vocab.get("entity", "Q900"), vocab.get("entity", "Q901")]
    assert torch.equal(model.news.entity.table.weight.detach()[unused], old_rows[unused])
    assert not torch.equal(model.news.entity.table.weight.detach()[1], old_rows[1])  # a replayed known row does move
    twin.learn_many(fresh, replay=known)
    for (name, a), b in zip(model.state_dict().items(), twin.model.state_dict().values()):
        assert torch.equal(a, b), name


def test_see_batches_cover_a_backlog_once_with_replay_of_known_news_only():
    fresh = [3, 7, *range(20, 30)]
    batches = see_batches(fresh, 40, OnlineConfig(see_max_fresh=5, see_replay=6), np.random.default_rng(0))
    assert [f for chunk, _ in batches for f in chunk] == fresh  # every fresh item once, in order
    assert [len(chunk) for chunk, _ in batches] == [5, 5, 2]
    for _, replay in batches:
        assert len(replay) == len(set(replay)) == 6 and not set(replay) & set(fresh) and max(replay) < 40
    assert see_batches([0, 1], 2, OnlineConfig(), np.random.default_rng(0)) == [([0, 1], [])]  # nothing known yet


def test_see_schedule_learns_every_period_or_at_once_on_a_burst():
    now = [100.0]
    schedule = SEESchedule(OnlineConfig(see_period_s=2.0, see_burst_entities=3), clock=lambda: now[0])
    schedule.scan(0, [[1, 2], [], [None]], rows=5)  # known entities, no entities, an unknown id
    assert not schedule.due() and schedule.pending == []
    schedule.scan(3, [[6]], rows=5)
    assert schedule.due()  # the first new entity after a quiet spell goes at once
    assert schedule.take() == ([3], {6}) and not schedule.due()
    now[0] += 1.0
    schedule.scan(4, [[7], [7, 1]], rows=7)
    assert not schedule.due()  # 1 waiting entity, 1 s into the 2 s period
    now[0] += 1.0
    assert schedule.due()  # the period is over
    now[0] += 0.1
    schedule.take()
    schedule.scan(6, [[8], [9, 10]], rows=8)
    assert schedule.due() and schedule.waiting == {8, 9, 10}  # a burst does not wait for the period
    schedule.take()


def test_see_schedule_keeps_learning_a_new_entity_from_the_news_that_follow():
    now = [0.0]
    schedule = SEESchedule(OnlineConfig(see_period_s=1.0, see_recent_s=60.0), clock=lambda: now[0])
    schedule.scan(0, [[6]], rows=6)
    assert schedule.take() == ([0], {6})
    now[0] = 2.0
    schedule.scan(1, [[6], [2]], rows=7)  # entity 6 has a row now, 2 s old; entity 2 is old
    assert schedule.pending == [1] and schedule.waiting == set() and schedule.due()
    schedule.take()
    now[0] = 70.0
    schedule.scan(2, [[6]], rows=7)  # 70 s after its row: no longer recent
    assert schedule.pending == [] and not schedule.due()


def test_vocab_tail_extends_a_prefix_copy():
    vocab = Vocab.build(["Q1"], ["news"], ["newsus"])
    copy_ = Vocab.from_dict(vocab.to_dict())
    vocab.add("entity", "Q2")
    vocab.add("entity", "Q3")
    copy_.extend(vocab.tail(len(copy_)))
    assert copy_ == vocab and vocab.tail(len(vocab)) == []
    with pytest.raises(ValueError, match="not a tail"):
        copy_.extend([("entity", "Q2")])


def test_see_summary_weights_alignment_by_fresh_news():
    summary = see_summary([(3, 0.2, 0.5, 0.01, 1.0), (1, 0.6, 0.9, None, 2.0)])
    assert summary["fresh_alignment_before"] == pytest.approx(0.3) and summary["fresh_alignment_after"] == pytest.approx(0.6)
    assert summary["replay_drift"] == pytest.approx(0.01) and summary["see_loss"] == pytest.approx(1.5)
    assert see_summary([])["fresh_alignment_after"] is None


class CountingFeatures(StoreFeatures):
    """Store features that record which news each ``batch`` call fetched."""

    def __init__(self, store, bottom) -> None:
        super().__init__(store, bottom)
        self.fetched: list[list[int]] = []

    def batch(self, seqs):
        self.fetched.append([int(s) for s in seqs])
        return super().batch(seqs)


def test_user_learner_encodes_each_news_once_until_the_news_towers_change(small_model):
    cfg, encoder = small_model
    store = NewsStore(Vocab.build([f"Q{i}" for i in range(len(KNOWN_TITLES))], ["sports", "news"], ["golf", "newsus"]))
    for i, title in enumerate(KNOWN_TITLES):
        store.add(NewsRecord(news_id=f"N{i}", category=("sports", "news")[i % 2], subcategory=("golf", "newsus")[i % 2],
                             title=title, entities=(f"Q{i}",), time=i))
    model = build_model(cfg, encoder, len(store.vocab)).eval()
    feats = CountingFeatures(store, BottomCache(encoder))
    imps = [ImpressionRecord(impression_id=k, user_id="U", time=k, history=("N0", "N1", "N2"),
                             candidates=tuple(f"N{(k + j) % 7 + 3}" for j in range(5))) for k in range(6)]
    joined = [Joined(imp, ClickRecord(impression_id=imp.impression_id, user_id="U", time=imp.time, clicked=imp.candidates[:1],
                                      shown=imp.candidates)) for imp in imps]
    learner = UserTowerLearner(model, feats, OnlineConfig(user_batch=2), seed=0)
    before = [p.detach().clone() for p in model.user.parameters()]
    learner.learn_many(joined)
    assert learner.steps == 3 and any(not torch.equal(a, b) for a, b in zip(before, model.user.parameters()))
    assert sorted(s for call in feats.fetched for s in call) == list(range(10))  # each news item fetched once
    calls = len(feats.fetched)
    loss = learner.evaluate_loss(joined)
    assert learner.evaluate_loss(joined) == loss and len(feats.fetched) == calls  # cached; deterministic (eval-mode news)
    with torch.no_grad():  # the cache holds what serving computes
        r_t, r_e = news_vectors(model.eval(), StoreFeatures(store, BottomCache(encoder)).batch(range(10)))
    cached_t, cached_e = learner._news(list(range(10)))
    torch.testing.assert_close(cached_t, r_t)
    torch.testing.assert_close(cached_e, r_e)
    with torch.no_grad():
        for p in model.news.entity.proj.parameters():
            p.mul_(0.5)  # as if a new entity tower was loaded
    learner.news_changed()
    assert learner.evaluate_loss(joined) != loss and sorted(feats.fetched[-1]) == list(range(10))


def test_store_snapshots_append_and_a_torn_tail_is_dropped(tmp_path):
    store = NewsStore(Vocab())
    store.add(NEWS)
    store.snapshot(tmp_path)
    store.add(NewsRecord(news_id="N2", category="news", title="Storm", time=200))
    store.snapshot(tmp_path)
    assert len((tmp_path / "news.jsonl").read_text().splitlines()) == 2  # appended, not rewritten twice
    with open(tmp_path / "news.jsonl", "a") as handle:  # a crash after appending, before state.json
        handle.write('{"news_id": "N3", "categ')
    back, _ = NewsStore.restore(tmp_path)
    assert [r.news_id for r in back.records] == ["N1", "N2"]
    back.add(NewsRecord(news_id="N4", category="news", title="Later", time=300))
    back.snapshot(tmp_path)
    again, _ = NewsStore.restore(tmp_path)
    assert [r.news_id for r in again.records] == ["N1", "N2", "N4"]
