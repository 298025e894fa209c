"""Entity freshness: seconds from publishing a news item with a brand-new entity to a published
model version that holds the entity's trained row, at the default SEE cadence.

Runs the real path: embedded broker -> the whole actor set of `ip2-stream stream up` (news
ingestion, SEE updater, user-tower trainer, registry) on a local Ray, with the default model
(all-MiniLM-L6-v2 title encoder, CPU profile) started from a fresh checkpoint of the `small`
synthetic preset. Unless --idle, the train split's impressions and clicks are published first,
so the user-tower trainer trains on the same 2 cores while breaking news are sent one at a
time. Also reports the peak memory of each actor, and per update the fresh news'
title/signature cosine before and after the steps and the replay news' drift. Usage:

    python bench/freshness.py [--samples 12] [--idle]

Last line: {"median_s", "p90_s", "samples", "actor_peak_rss_mb", "fresh_alignment_improved", ...}; also
bench/results/freshness.json. Reference points: Monolith syncs sparse parameters about once a
minute; Ekko reports 2.4 s.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import finish, peak_rss_mb  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=12)
    parser.add_argument("--preset", default="small")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for one entity")
    parser.add_argument("--idle", action="store_true", help="no click stream: the user-tower trainer waits")
    args = parser.parse_args()
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    import numpy as np
    import ray

    from actors import launch
    from ip2_stream.data.synth import SynthConfig, generate
    from ip2_stream.model.checkpoint import read_manifest, save_checkpoint
    from ip2_stream.model.ip2 import IP2Config
    from ip2_stream.online.live import LiveConfig
    from ip2_stream.registry import Registry
    from ip2_stream.stream.broker import EmbeddedBroker
    from ip2_stream.stream.io import RecordProducer
    from ip2_stream.stream.mind_events import MindEvents
    from ip2_stream.stream.records import NewsRecord
    from ip2_stream.train.pipeline import new_model, open_workspace

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        generate(SynthConfig.from_preset(args.preset, seed=0), tmp / "data")
        model_cfg = IP2Config()
        ws = open_workspace(tmp / "data", ("train",), model_cfg, tmp / "cache")
        save_checkpoint(tmp / "init", new_model(ws, model_cfg, 0), model_cfg, ws.vocab, stage="init")
        broker = EmbeddedBroker(tmp / "broker")
        state = broker.start()
        try:
            cfg = LiveConfig(state_dir=tmp / "live", init_checkpoint=tmp / "init", bootstrap=state.bootstrap)
            launch.connect(None)
            actors = launch.up(cfg, detached=False)
            producer = RecordProducer(cfg.bootstrap)
            events = MindEvents(ws.corpus)
            news = list(events.news())
            for rec in news:
                producer.send(cfg.stream.topics.news, rec.news_id, rec)
            producer.flush()
            print(f"ingesting {len(news)} news ...", flush=True)
            while ray.get(actors["ingestor"].status.remote())["news"] < len(news):
                time.sleep(0.5)  # the SEE updater has nothing to do: these news carry no new entity
            impressions = 0 if args.idle else len(ws.corpus.splits["train"])
            for i in range(impressions):
                imp, click = events.impression("train", i)
                producer.send(cfg.stream.topics.impressions, imp.user_id, imp)
                producer.send(cfg.stream.topics.clicks, click.user_id, click)
            producer.flush()
            load_started = time.perf_counter()
            print(f"published {impressions} impressions and their clicks for the user-tower trainer", flush=True)
            registry = Registry(cfg.registry_dir)
            delays, alignment, drift = [], [], []
            for k in range(args.samples):
                qid = f"Q90000{k:04d}"
                rec = NewsRecord(news_id=f"NFRESH{k}", category="sports", subcategory="golf",
                                 title=f"Breaking: Zorvath Kellan{k} stuns the final round", entities=(qid,),
                                 entity_labels=(f"Zorvath Kellan{k}",), time=2_000_000_000 + k)
                sent = time.perf_counter()
                producer.send(cfg.stream.topics.news, rec.news_id, rec)
                producer.flush()
                while True:  # the trainer publishes too: look at every version, newest first
                    latest = next((v for v in reversed(registry.versions()) if qid in (v.metrics or {}).get("new_entities", [])), None)
                    if latest is not None:
                        vocab_tokens = read_manifest(latest.path)["vocab"]["tokens"]
                        assert ["entity", qid] in vocab_tokens
                        break
                    if time.perf_counter() - sent > args.timeout:
                        sys.exit(f"freshness: entity {qid} not published within {args.timeout} s")
                    time.sleep(0.02)
                delays.append(time.perf_counter() - sent)
                m = latest.metrics
                alignment.append((m["fresh_alignment_before"], m["fresh_alignment_after"]))
                drift.append(m["replay_drift"])
                print(f"  {qid}: {delays[-1]:.2f} s -> version {latest.version}; title/signature cosine "
                      f"{alignment[-1][0]:.3f} -> {alignment[-1][1]:.3f}, replay drift {drift[-1]:.4f}", flush=True)
            status = {name: ray.get(h.status.remote()) for name, h in actors.items()}
            memory = {name: s["peak_rss_mb"] for name, s in status.items()}
            trained = status["trainer"]["trained_impressions"]
            load_s = time.perf_counter() - load_started
            launch.down()
            ray.shutdown()
        finally:
            broker.stop()
    d, a = np.asarray(delays), np.asarray(alignment)
    finish("freshness", {
        "median_s": round(float(np.median(d)), 3), "p90_s": round(float(np.quantile(d, 0.9)), 3), "samples": len(d),
        "max_s": round(float(d.max()), 3), "see_period_s": cfg.online.see_period_s, "target_median_s": 5.0,
        "target_ratio": round(float(np.median(d)) / 5.0, 3), "actor_peak_rss_mb": memory,
        "actor_set_peak_rss_mb": round(sum(memory.values()), 1), "driver_peak_rss_mb": round(peak_rss_mb(), 1),
        "fresh_alignment_before_mean": round(float(a[:, 0].mean()), 4), "fresh_alignment_after_mean": round(float(a[:, 1].mean()), 4),
        "fresh_alignment_improved": int((a[:, 1] > a[:, 0]).sum()), "replay_drift_mean": round(float(np.mean(drift)), 5),
        "click_load": not args.idle, "impressions_published": impressions, "impressions_trained": trained,
        "trainer_impressions_per_s": round(trained / load_s, 1),
    })


if __name__ == "__main__":
    main()
