"""The live loop against the real embedded broker and a real local Ray (one per module).

A tiny IP2 model (tiny BERT, small widths) keeps it fast on 2 cores.
"""

from __future__ import annotations

import time

import pytest
import torch

pytestmark = pytest.mark.integration

ray = pytest.importorskip("ray")

from actors import launch  # noqa: E402
from actors.learners import RemoteFeatures, SEEUpdaterActor, UserTowerTrainerActor  # noqa: E402
from actors.news_ingestor import NewsIngestorActor  # noqa: E402
from ip2_stream.data.dataset import load_corpus  # noqa: E402
from ip2_stream.model.checkpoint import load_checkpoint, save_checkpoint  # noqa: E402
from ip2_stream.model.ip2 import IP2Config  # noqa: E402
from ip2_stream.online.learners import Joined, OnlineConfig, UserTowerLearner, news_vectors  # noqa: E402
from ip2_stream.online.live import LiveConfig, learner_state  # noqa: E402
from ip2_stream.registry import Registry  # noqa: E402
from ip2_stream.stream.broker import EmbeddedBroker  # noqa: E402
from ip2_stream.stream.io import RecordProducer, StreamConfig, TopicsConfig, ensure_topics  # noqa: E402
from ip2_stream.stream.mind_events import MindEvents  # noqa: E402
from ip2_stream.stream.records import NewsRecord  # noqa: E402
from ip2_stream.train.pipeline import new_model, open_workspace  # noqa: E402
from ip2_stream.train.trainer import PretrainConfig, pretrain  # noqa: E402


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = EmbeddedBroker(tmp_path_factory.mktemp("broker"))
    state = b.start()
    yield state
    b.stop()


@pytest.fixture(scope="module")
def ray_local():
    launch.connect(None)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tiny_data, tmp_path_factory):
    return load_corpus(tiny_data, ("train", "dev"), tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def init_ckpt(tiny_data, tiny_encoder_path, tmp_path_factory):
    cfg = IP2Config(text_encoder=str(tiny_encoder_path), trainable_layers=0, max_title_len=16, news_dim=32, entity_dim=16,
                    see_heads=2, see_ff=32, user_heads=4, history_len=20)
    ws = open_workspace(tiny_data, ("train",), cfg, tmp_path_factory.mktemp("wscache"))
    model = new_model(ws, cfg, 0)
    pretrain(model, ws.feats, ws.train_news(), PretrainConfig(epochs=2, batch_size=64, lr=1e-3), seed=0, progress=False)
    out = tmp_path_factory.mktemp("init") / "ckpt"
    save_checkpoint(out, model, cfg, ws.vocab, stage="pretrain")  # the offline model the live loop starts from
    return out


def live_config(tmp_path, broker, init_ckpt, name: str, keep_versions: int = 20, **online) -> LiveConfig:
    topics = TopicsConfig(news=f"{name}.news", impressions=f"{name}.imp", clicks=f"{name}.clicks", dead_letter=f"{name}.dlq")
    cfg = LiveConfig(state_dir=tmp_path / "live", init_checkpoint=init_ckpt, bootstrap=broker.bootstrap,
                     stream=StreamConfig(topics=topics), keep_versions=keep_versions,
                     online=OnlineConfig(see_period_s=0.3, checkpoint_period_s=0.5, user_batch=16, history_len=20, **online))
    ensure_topics(cfg.stream, cfg.bootstrap)
    return cfg


def wait_for(predicate, timeout_s: float, what: str, show=None):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}" + (f"; state: {show()}" if show else ""))


def title_entity_cosine(ckpt_path, ingestor, news_id) -> float:
    ckpt = load_checkpoint(ckpt_path)
    seq = ray.get(ingestor.seqs.remote([news_id]))
    batch = ray.get(ingestor.batch.remote([int(seq[0])]))
    with torch.no_grad():
        r_t, r_e = news_vectors(ckpt.model.eval(), batch)
    return float(torch.nn.functional.cosine_similarity(r_t, r_e)[0])


def test_a_brand_new_entity_gets_its_row_within_seconds(ray_local, broker, init_ckpt, corpus, tmp_path):
    cfg = live_config(tmp_path, broker, init_ckpt, "t1", keep_versions=1000, see_max_fresh=10)  # every version is inspected
    ingestor = NewsIngestorActor.remote(cfg)
    see = SEEUpdaterActor.remote(cfg, ingestor)
    producer = RecordProducer(cfg.bootstrap)
    for rec in MindEvents(corpus).news():
        producer.send(cfg.stream.topics.news, rec.news_id, rec)
    producer.flush()
    wait_for(lambda: ray.get(ingestor.status.remote())["news"] == corpus.num_news, 30, "the corpus news",
             lambda: (corpus.num_news, ray.get(ingestor.status.remote()), ray.get(see.status.remote())))
    registry = Registry(cfg.registry_dir)
    before_version = wait_for(lambda: ray.get(see.status.remote())["caught_up_to"] == corpus.num_news and registry.latest(), 30, "SEE catch-up")
    # the catch-up (one or more versions) learned every news item with an entity the initial
    # model lacks, once, in batches of at most 10
    init_vocab = load_checkpoint(init_ckpt).vocab
    backlog = [r for r in MindEvents(corpus).news() if any(("entity", e) not in init_vocab for e in r.entities)]
    catch_up = [v.metrics for v in registry.versions() if v.changed == ("entity",)]
    assert len(backlog) > 10 and sum(m["fresh_news"] for m in catch_up) == len(backlog)
    assert all(m["fresh_alignment_after"] > m["fresh_alignment_before"] for m in catch_up), catch_up
    breaking = NewsRecord(news_id="NBREAK1", category="sports", subcategory="golf", title="Zorvath Kellan wins stunning playoff",
                          entities=("Q987654321",), entity_labels=("Zorvath Kellan",), time=2_000_000_000)
    sent = time.monotonic()
    producer.send(cfg.stream.topics.news, breaking.news_id, breaking)
    producer.flush()

    def has_row():
        latest = registry.latest()
        ckpt = load_checkpoint(latest.path)
        eid = ckpt.vocab.get("entity", "Q987654321")
        return latest if eid is not None and eid < len(ckpt.model.news.entity.table) else None

    version = wait_for(has_row, 30, "a version with the new entity's row")
    elapsed = time.monotonic() - sent
    assert version.changed == ("entity",) and "Q987654321" in version.metrics["new_entities"]
    assert elapsed < 10, f"freshness {elapsed:.1f} s"
    # its signature is closer to its title than before the update: than with the row just grown
    # (as reported in the version) and than in the version before, where the entity had no row
    m = version.metrics
    now = title_entity_cosine(version.path, ingestor, "NBREAK1")
    parent = title_entity_cosine(registry.get(version.parent).path, ingestor, "NBREAK1")
    assert now == pytest.approx(m["fresh_alignment_after"], abs=1e-4)
    assert now > m["fresh_alignment_before"] and now > parent, (m, parent)
    assert m["replay_drift"] < 0.05  # known news stay where they were
    assert before_version.version < version.version
    for h in (see, ingestor):
        ray.get(h.stop.remote())
        ray.kill(h, no_restart=True)


def _publish_stream(cfg, corpus, events, producer, role, imps):
    for i in imps:
        imp, click = events.impression(role, int(i))
        producer.send(cfg.stream.topics.impressions, imp.user_id, imp)
        producer.send(cfg.stream.topics.clicks, click.user_id, click)
    producer.flush()


def test_clicks_train_the_user_towers_and_poison_is_dead_lettered(ray_local, broker, init_ckpt, corpus, tmp_path):
    from kafka import KafkaConsumer

    cfg = live_config(tmp_path, broker, init_ckpt, "t2", user_lr=1e-3)  # random user towers: bigger steps than fine-tuning
    events = MindEvents(corpus)
    producer = RecordProducer(cfg.bootstrap)
    for rec in events.news():
        producer.send(cfg.stream.topics.news, rec.news_id, rec)
    producer.send_raw(cfg.stream.topics.news, b"bad", b"\xff\xfe not json")
    producer.flush()
    ingestor = NewsIngestorActor.remote(cfg)
    wait_for(lambda: ray.get(ingestor.status.remote())["news"] == corpus.num_news, 30, "news")
    trainer = UserTowerTrainerActor.remote(cfg, ingestor)
    train = corpus.splits["train"]
    streamed = [i for i in range(len(train)) if i % 5]  # every 5th impression is held out
    half = len(streamed) // 2
    _publish_stream(cfg, corpus, events, producer, "train", streamed[:half])
    producer.send_raw(cfg.stream.topics.clicks, b"U1", b'{"schema":"click","version":1,"impression_id":-4}')
    producer.send_raw(cfg.stream.topics.impressions, b"U1", b'{"schema":"news","version":1}')
    producer.send_raw(cfg.stream.topics.impressions, b"U1", b"x" * (cfg.stream.max_message_bytes + 1))
    _publish_stream(cfg, corpus, events, producer, "train", streamed[half:])  # keeps going after poison
    n_train = len(streamed)
    wait_for(lambda: ray.get(trainer.status.remote())["trained_impressions"] == n_train, 90, "all impressions trained",
             lambda: ray.get(trainer.status.remote()))
    final = ray.get(trainer.flush.remote())
    time.sleep(4 * cfg.online.checkpoint_period_s)  # idle: nothing changed, so no new version
    assert Registry(cfg.registry_dir).latest().version == final and ray.get(trainer.flush.remote()) == final

    # the held-out slice of the same stream, under the initial and the final model
    joined = [Joined(*events.impression("train", i)) for i in range(0, len(train), 5)]
    registry = Registry(cfg.registry_dir)
    losses = {}
    for name, version in (("initial", 1), ("final", final)):
        model = load_checkpoint(registry.get(version).path).model
        losses[name] = UserTowerLearner(model, RemoteFeatures(ingestor), cfg.online).evaluate_loss(joined)
    assert losses["final"] < losses["initial"] - 0.01, losses

    dead = KafkaConsumer(cfg.stream.topics.dead_letter, bootstrap_servers=cfg.bootstrap, auto_offset_reset="earliest",
                         consumer_timeout_ms=3000)
    reasons = {m.headers and dict(m.headers)["reason"].decode() for m in dead}
    dead.close()
    assert any(r.startswith("not JSON") for r in reasons)
    assert any("invalid click" in r for r in reasons)
    assert any("schema 'news' on a topic that carries 'impression'" in r for r in reasons)
    assert any("exceeds the" in r for r in reasons)
    assert ray.get(ingestor.status.remote())["dead_letters"] == 1
    for h in (trainer, ingestor):
        ray.get(h.stop.remote())
        ray.kill(h, no_restart=True)


def test_a_killed_trainer_resumes_and_trains_every_impression_exactly_once(ray_local, broker, init_ckpt, corpus, tmp_path):
    cfg = live_config(tmp_path, broker, init_ckpt, "t3")
    events = MindEvents(corpus)
    producer = RecordProducer(cfg.bootstrap)
    for rec in events.news():
        producer.send(cfg.stream.topics.news, rec.news_id, rec)
    producer.flush()
    ingestor = NewsIngestorActor.remote(cfg)
    wait_for(lambda: ray.get(ingestor.status.remote())["news"] == corpus.num_news, 30, "news")
    trainer = UserTowerTrainerActor.remote(cfg, ingestor)
    train = corpus.splits["train"]
    half = len(train) // 2
    _publish_stream(cfg, corpus, events, producer, "train", range(half))
    wait_for(lambda: ray.get(trainer.status.remote())["trained_impressions"] >= half // 2, 60, "some training")
    ray.kill(trainer, no_restart=False)  # Ray restarts it; its constructor restores the last published version
    _publish_stream(cfg, corpus, events, producer, "train", range(half, len(train)))
    status = wait_for(lambda: (s := _status(trainer)) and s["trained_impressions"] == len(train) and s, 120, "restart + catch-up",
                      lambda: _status(trainer))
    ray.get(trainer.flush.remote())
    registry = Registry(cfg.registry_dir)
    ledger = learner_state(registry, "trainer")["ledger"]
    assert len(ledger) == len(set(ledger)) == len(train)  # none lost, none twice
    assert set(ledger) == {int(x) for x in train.impression_id}
    assert status["trained_impressions"] == len(train)
    for h in (trainer, ingestor):
        ray.get(h.stop.remote())
        ray.kill(h, no_restart=True)


def test_clicks_that_arrive_before_their_news_wait_for_them(ray_local, broker, init_ckpt, corpus, tmp_path):
    cfg = live_config(tmp_path, broker, init_ckpt, "t5")
    events = MindEvents(corpus)
    producer = RecordProducer(cfg.bootstrap)
    ingestor = NewsIngestorActor.remote(cfg)
    trainer = UserTowerTrainerActor.remote(cfg, ingestor)
    n = 40
    _publish_stream(cfg, corpus, events, producer, "train", range(n))  # the store has no news yet
    wait_for(lambda: ray.get(trainer.status.remote())["buffered"] == n, 60, "joined impressions held",
             lambda: ray.get(trainer.status.remote()))
    time.sleep(3 * cfg.online.checkpoint_period_s)
    held = ray.get(trainer.status.remote())
    assert held["trained_impressions"] == 0 and held["buffered"] == n
    # the held impressions are stored with the version that commits their offsets
    assert len(learner_state(Registry(cfg.registry_dir), "trainer").get("held", [])) == n
    for rec in events.news():
        producer.send(cfg.stream.topics.news, rec.news_id, rec)
    producer.flush()
    done = wait_for(lambda: (s := ray.get(trainer.status.remote()))["trained_impressions"] == n and s, 60, "training after the news")
    assert done["trained_without_news"] == 0 and done["buffered"] == 0 and done["steps"] > 0
    for h in (trainer, ingestor):
        ray.get(h.stop.remote())
        ray.kill(h, no_restart=True)


def test_a_restarted_ingestor_keeps_the_entity_ids_the_registry_published(ray_local, broker, init_ckpt, tmp_path):
    from actors.news_ingestor import NewsIngestor
    from ip2_stream.data.vocab import Vocab

    cfg = live_config(tmp_path, broker, init_ckpt, "t6")
    producer = RecordProducer(cfg.bootstrap)

    def news(k, entity):
        return NewsRecord(news_id=f"NR{k}", category="sports", subcategory="golf", title=f"Story {k}", entities=(entity,), time=k)

    first = NewsIngestor(cfg)
    producer.send(cfg.stream.topics.news, "NR1", news(1, "QA"))
    producer.flush()
    wait_for(lambda: first.status()["news"] == 1, 30, "the first news")
    first.stop()  # snapshot: QA has an id
    # meanwhile the SEE updater published a vocabulary that also holds QB and QC (news this
    # snapshot predates), in that order
    registry = Registry(cfg.registry_dir)
    ckpt = load_checkpoint(registry.latest().path)
    vocab = Vocab.from_dict(first.store.vocab.to_dict())
    vocab.add("entity", "QB")
    vocab.add("entity", "QC")
    save_checkpoint(tmp_path / "see", ckpt.model, ckpt.config, vocab)
    registry.publish(tmp_path / "see", ("entity",))
    # the news carrying them come back in the other order after the restart
    for k, entity in ((3, "QC"), (2, "QB")):
        producer.send(cfg.stream.topics.news, f"NR{k}", news(k, entity))
    producer.flush()
    second = NewsIngestor(cfg)
    wait_for(lambda: second.status()["news"] == 3, 30, "the news after the restart")
    second.stop()
    assert second.store.vocab == vocab  # QB and QC keep the ids the registry published


def _status(handle):
    try:
        return ray.get(handle.status.remote(), timeout=5)
    except Exception:
        return None


def test_stream_up_runs_the_actor_set_until_down(ray_local, broker, init_ckpt, tmp_path):
    cfg = live_config(tmp_path, broker, init_ckpt, "t4")
    actors = launch.up(cfg, detached=False)  # as `ip2-stream stream up` in the foreground
    assert set(actors) == set(launch.NAMES)
    assert launch.up(cfg, detached=False).keys() == actors.keys()  # a second `up` reuses the running actors
    time.sleep(1.0)  # the actors outlive the call that made them while their handles live
    status = launch.status()
    for key in launch.NAMES:
        assert status[key] is not None and status[key].get("error") is None, (key, status[key])
    assert status["registry"]["latest"]["version"] == 1 and status["ingestor"]["news"] == 0
    assert sorted(launch.down()) == sorted(launch.NAMES.values())
    assert all(h is None for h in launch.handles().values())


def test_the_demo_streams_news_and_dev_clicks_through_the_live_loop(ray_local, tiny_data, init_ckpt, corpus, tmp_path):
    from ip2_stream.config import Settings
    from ip2_stream.demo import _live_loop

    settings = Settings().model_copy(deep=True)
    settings.data.cache_dir = tmp_path / "cache"
    settings.live.online = OnlineConfig(see_period_s=0.3, checkpoint_period_s=0.5, user_batch=16, history_len=20)
    settings.live.keep_versions = 2
    steps = []
    summary = _live_loop(settings, tiny_data, init_ckpt, tmp_path / "demo", steps, timeout_s=120)
    assert summary["news_ingested"] == summary["news_streamed"] == corpus.num_news
    assert summary["impressions_trained"] == summary["dev_impressions_streamed"] == len(corpus.splits["dev"])
    # the dev split brings entities the initial model lacks: the SEE updater learned them
    init_vocab = load_checkpoint(init_ckpt).vocab
    new_entities = {e for r in MindEvents(corpus).news() for e in r.entities if ("entity", e) not in init_vocab}
    assert summary["see_updates"] >= 1 and summary["entity_rows_added"] == len(new_entities) > 0
    assert summary["see_alignment_rose"] == summary["see_versions_kept"] >= 1 and summary["last_train_loss"] is not None
    # the registry stays bounded: the newest 2, the last 2 promotions, each learner's newest
    registry = Registry(tmp_path / "demo" / "live" / "registry")
    assert registry.latest().version == summary["latest_version"] > summary["versions_kept"] == len(registry.versions())
    assert len(list((registry.root / "versions").iterdir())) == summary["versions_kept"] <= 4
    assert all(h is None for h in launch.handles().values()) and len(steps) == 1
