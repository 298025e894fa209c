"""The main job run by ``make demo``: everything that exists, end to end, on generated data."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from ip2_stream.config import Settings
from ip2_stream.data.dataset import load_corpus
from ip2_stream.data.inspect import inspect
from ip2_stream.data.synth import generate
from ip2_stream.eval.baselines import BASELINES
from ip2_stream.eval.report import evaluation_report

logger = logging.getLogger(__name__)


def ensure_synthetic(settings: Settings, data_dir: Path) -> bool:
    """Generate the configured synthetic data set into ``data_dir`` unless it is already there.

    Returns True when it generated, False when an identical data set was reused.
    """
    marker = data_dir / "synth.json"
    wanted = settings.synth.model_dump(mode="json")
    if marker.is_file() and json.loads(marker.read_text(encoding="utf-8")).get("config") == wanted:
        logger.info("reusing synthetic data in %s", data_dir)
        return False
    logger.info("generating synthetic MIND (%s preset, seed %d) into %s", settings.synth.preset, settings.synth.seed, data_dir)
    generate(settings.synth, data_dir)
    return True


def _train_ip2(settings: Settings, data_dir: Path, out: Path, steps: list[str]) -> dict:
    """Stage 1 + stage 2 with the ablation profile (CPU-sized), checkpoint, dev report."""
    from ip2_stream.model.checkpoint import save_checkpoint
    from ip2_stream.train.pipeline import data_fingerprint, evaluate_model, fit, new_model, open_workspace
    from ip2_stream.train.trainer import pretrain

    seed = settings.train.seed
    ws = open_workspace(data_dir, ("train", "dev"), settings.model, settings.data.cache_dir)
    model = new_model(ws, settings.model, seed)
    pre = pretrain(model, ws.feats, ws.train_news(), settings.ablate.pretrain, seed)
    summary = fit(ws, model, settings.model, settings.ablate.finetune, seed)
    report = evaluate_model(ws, model, settings.model, "dev", "ip2")
    ckpt = out / "ip2-checkpoint"
    save_checkpoint(ckpt, model, settings.model, ws.vocab, stage="train", pretrain=pre, train=summary,
                    data=data_fingerprint(ws.corpus), metrics=report, seed=seed)
    (out / "eval_ip2.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    steps.append(f"pre-trained and fine-tuned IP2 (ablation profile) -> {ckpt}, dev report {out / 'eval_ip2.json'}")
    logger.info("dev %-10s AUC %.4f  MRR %.4f", "ip2", report["overall"]["auc"], report["overall"]["mrr"])
    return {"auc": round(report["overall"]["auc"], 4), "mrr": round(report["overall"]["mrr"], 4),
            "auc_cold": round(report["cold_start"]["auc"], 4)}


def _wait(what: str, total: int, done, timeout_s: float) -> int:
    """Poll ``done()`` under a progress bar until it reaches ``total``; returns the last value."""
    from tqdm import tqdm

    deadline = time.monotonic() + timeout_s
    with tqdm(total=total, desc=what) as bar:
        value = done()
        while value < total and time.monotonic() < deadline:
            time.sleep(0.5)
            value = done()
            bar.update(value - bar.n)
    if value < total:
        logger.warning("%s: %d of %d after %.0f s; reporting what was done", what, value, total, timeout_s)
    return value


def _live_loop(settings: Settings, data_dir: Path, ckpt: Path, out: Path, steps: list[str], timeout_s: float = 600.0) -> dict:
    """Stream the news and the dev impressions + clicks through the live loop: the embedded
    broker, the four actors of ``stream up`` on a local Ray, the registry."""
    import shutil

    import ray

    from actors import launch
    from ip2_stream.registry import Registry
    from ip2_stream.stream.broker import EmbeddedBroker
    from ip2_stream.stream.io import RecordProducer
    from ip2_stream.stream.mind_events import MindEvents

    live_dir = out / "live"
    shutil.rmtree(live_dir, ignore_errors=True)  # a fresh registry from this run's checkpoint
    broker = EmbeddedBroker(out / "broker")
    state = broker.start()
    try:
        cfg = settings.live.model_copy(update={"state_dir": live_dir, "broker_dir": out / "broker", "init_checkpoint": ckpt,
                                               "bootstrap": state.bootstrap, "ray_address": None})
        launch.connect(None)
        actors = launch.up(cfg, detached=False)
        initial_rows = ray.get(actors["see"].status.remote())["table_rows"]
        corpus = load_corpus(data_dir, ("train", "dev"), settings.data.cache_dir)
        events = MindEvents(corpus)
        producer = RecordProducer(cfg.bootstrap)
        news = list(events.news())
        for rec in news:
            producer.send(cfg.stream.topics.news, rec.news_id, rec)
        dev = len(corpus.splits["dev"])
        for i in range(dev):
            imp, click = events.impression("dev", i)
            producer.send(cfg.stream.topics.impressions, imp.user_id, imp)
            producer.send(cfg.stream.topics.clicks, click.user_id, click)
        producer.flush()
        producer.close()
        started = time.perf_counter()
        ingested = _wait("live: news ingested", len(news), lambda: ray.get(actors["ingestor"].status.remote())["news"], timeout_s)
        _wait("live: SEE caught up", len(news), lambda: ray.get(actors["see"].status.remote())["caught_up_to"], timeout_s)
        trained = _wait("live: dev impressions trained", dev,
                        lambda: ray.get(actors["trainer"].status.remote())["trained_impressions"], timeout_s)
        seconds = time.perf_counter() - started
        see_status = ray.get(actors["see"].status.remote())
        launch.down()  # the learners publish once more; Ray itself stays up until the process ends
        versions = Registry(cfg.registry_dir).versions()
    finally:
        broker.stop()
    kept_see = [v.metrics for v in versions if v.changed == ("entity",)]
    kept_user = [v.metrics for v in versions if v.changed == ("user",)]
    summary = {
        "news_streamed": len(news), "news_ingested": ingested, "dev_impressions_streamed": dev, "impressions_trained": trained,
        "seconds": round(seconds, 1), "latest_version": versions[-1].version, "versions_kept": len(versions),
        "see_updates": see_status["updates"], "entity_rows_added": see_status["table_rows"] - initial_rows,
        # of the versions the registry kept (live.keep_versions):
        "see_alignment_rose": sum(m["fresh_alignment_after"] > m["fresh_alignment_before"] for m in kept_see
                                  if m["fresh_alignment_after"] is not None),
        "see_versions_kept": len(kept_see), "last_train_loss": kept_user[-1]["train_loss"] if kept_user else None,
        "registry": str(cfg.registry_dir),
    }
    steps.append(f"streamed {len(news)} news and {dev} dev impressions + clicks through the embedded broker and the live actors "
                 f"-> model version {versions[-1].version} in {cfg.registry_dir}")
    logger.info("live loop: %s", summary)
    return summary


def run_demo(settings: Settings, out: Path) -> dict:
    """Generate (or reuse) data, inspect it, score the baselines, train IP2, stream through the live loop."""
    out.mkdir(parents=True, exist_ok=True)
    data_dir = out / "data"
    steps = []
    started = time.perf_counter()
    generated = ensure_synthetic(settings, data_dir)
    steps.append(f"{'generated' if generated else 'reused'} synthetic MIND data in {data_dir}")
    summary = inspect(data_dir, settings.data.cache_dir)
    (out / "inspect.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    steps.append(f"inspected it -> {out / 'inspect.json'}")
    corpus = load_corpus(data_dir, ("train", "dev"), settings.data.cache_dir)
    results = {}
    for name in ("random", "popularity", "oracle"):
        report = evaluation_report(corpus, "dev", BASELINES[name](corpus, "dev", seed=settings.eval.seed), name)
        (out / f"eval_{name}.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
        results[name] = {
            "auc": round(report["overall"]["auc"], 4),
            "mrr": round(report["overall"]["mrr"], 4),
            "auc_cold": round(report["cold_start"]["auc"], 4),
        }
        logger.info("dev %-10s AUC %.4f  MRR %.4f", name, report["overall"]["auc"], report["overall"]["mrr"])
    steps.append(f"scored the dev split with random, popularity and the oracle -> {out}/eval_*.json")
    results["ip2"] = _train_ip2(settings, data_dir, out, steps)
    live = _live_loop(settings, data_dir, out / "ip2-checkpoint", out, steps)
    return {
        "steps": steps,
        "data": {role: {k: s[k] for k in ("impressions", "users", "news", "ctr")} for role, s in summary.items()},
        "dev_metrics": results,
        "live": live,
        "seconds": round(time.perf_counter() - started, 1),
        "next": "run the live loop yourself: ip2-stream broker start; "
                f"ip2-stream stream up --init {out / 'ip2-checkpoint'} (serving and the replay simulator arrive with later issues)",
    }
