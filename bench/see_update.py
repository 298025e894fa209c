"""How one SEE update learns a brand-new entity, and what it costs the news the model knows.

Starts from a pre-trained checkpoint (stage 1 of the `ablate` CPU profile on the `small`
synthetic preset, unless --ckpt is given). Each trial takes one dev news item whose entities the
checkpoint never saw, grows the table as the live SEE updater does, and runs one update on it
plus a replay sample of train news. Two settings run on the same trials, from the same state:

- baseline: stage-1 InfoNCE only, one learning rate (5e-3) for every SEE weight and row, no
  alignment or anchor terms: the first version of the live updater;
- default: the live updater's defaults (`live.online.*`).

Per setting: in how many trials the fresh item's title/signature cosine rose, its mean before
and after, its cosine in the parent model (where the entity has no row), and the drift of
known news: mean 1 - cos(signature before, after) over a fixed probe of train news the update
did not train on. Usage:

    python bench/see_update.py [--data DIR --ckpt DIR] [--items 8] [--seeds 3] [--name see_update]

Last line: {"baseline": {...}, "default": {...}, "drift_ratio", ...}; also
bench/results/NAME.json. The README's fine-tuned figures: `--data runs/demo/data --ckpt
runs/demo/ip2-checkpoint --name see_update_finetuned` after `make demo`.
"""

from __future__ import annotations

import argparse
import copy
import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import finish  # noqa: E402

BASELINE = {"see_lr": 5e-3, "see_new_row_lr": 5e-3, "see_align_weight": 0.0, "see_anchor_weight": 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="MIND folder with train/ and dev/ (default: generate `small`, seed 0)")
    parser.add_argument("--ckpt", type=Path, help="pre-trained checkpoint for --data (default: pre-train one, about a minute)")
    parser.add_argument("--items", type=int, default=8, help="fresh dev news items")
    parser.add_argument("--seeds", type=int, default=3, help="trials per item")
    parser.add_argument("--probe", type=int, default=500, help="known news whose drift is measured")
    parser.add_argument("--name", default="see_update", help="results file bench/results/NAME.json")
    args = parser.parse_args()
    if (args.data is None) != (args.ckpt is None):
        parser.error("--data and --ckpt go together")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        data, ckpt = args.data, args.ckpt
        if data is None:
            data, ckpt = pretrained(Path(tmp))
        results = run(data, ckpt, args.items, args.seeds, args.probe, Path(tmp) / "cache")
    base, default = results["baseline"], results["default"]
    finish(args.name, {
        **results, "items": args.items, "seeds": args.seeds, "probe": args.probe,
        "improved_ratio": round(default["improved"] / max(base["improved"], 1), 3),
        "drift_ratio": round(default["known_drift_mean"] / base["known_drift_mean"], 4),
    })


def pretrained(tmp: Path) -> tuple[Path, Path]:
    from ip2_stream.config import Settings
    from ip2_stream.data.synth import SynthConfig, generate
    from ip2_stream.train.pipeline import run_pretrain

    data = tmp / "data"
    print("generating the small preset and pre-training (ablate profile) ...", flush=True)
    generate(SynthConfig.from_preset("small", seed=0), data)
    settings = Settings()
    run_pretrain(data, tmp / "ckpt", settings.model, settings.ablate.pretrain, seed=0, cache_dir=tmp / "cache")
    return data, tmp / "ckpt"


def run(data: Path, ckpt_path: Path, items: int, seeds: int, probe: int, cache: Path) -> dict:
    import numpy as np
    import torch
    import torch.nn.functional as F

    from ip2_stream.data.dataset import load_corpus
    from ip2_stream.data.vocab import Vocab
    from ip2_stream.model.checkpoint import load_checkpoint
    from ip2_stream.model.text import BottomCache
    from ip2_stream.online.learners import NewsBatch, OnlineConfig, SignatureUpdater, news_vectors
    from ip2_stream.online.store import NewsStore, StoreFeatures
    from ip2_stream.stream.mind_events import MindEvents

    ckpt = load_checkpoint(ckpt_path)
    corpus = load_corpus(data, ("train", "dev"), cache)
    store = NewsStore(Vocab.from_dict(ckpt.vocab.to_dict()))
    for rec in MindEvents(corpus).news():
        store.add(rec)
    known = [[("entity", e) in ckpt.vocab for e in r.entities] for r in store.records]
    fresh_seqs = [i for i, k in enumerate(known) if k and not any(k)]  # every entity brand-new
    known_seqs = [i for i, k in enumerate(known) if all(k)]
    rng = np.random.default_rng(0)
    fresh_seqs = sorted(rng.choice(fresh_seqs, size=min(items, len(fresh_seqs)), replace=False).tolist())
    probe_seqs = sorted(rng.choice(known_seqs, size=min(probe, len(known_seqs)), replace=False).tolist())
    pool = np.setdiff1d(known_seqs, probe_seqs)
    feats = StoreFeatures(store, BottomCache(ckpt.model.news.title.encoder))
    probe_batch = feats.batch(probe_seqs)
    print(f"{len(fresh_seqs)} fresh news x {seeds} seeds; replay from {len(pool)} known news; drift probe {len(probe_seqs)}", flush=True)

    def cosine(model, batch: NewsBatch) -> float:
        with torch.no_grad():
            return float(F.cosine_similarity(*news_vectors(model.eval(), batch))[0])

    settings = {"baseline": OnlineConfig(**BASELINE), "default": OnlineConfig()}
    trials = {name: [] for name in settings}
    for item in fresh_seqs:
        fresh = feats.batch([item])
        parent = cosine(ckpt.model, fresh)
        for seed in range(seeds):
            replay_cfg = OnlineConfig()
            replay = feats.batch(sorted(np.random.default_rng(seed).choice(pool, replay_cfg.see_replay, replace=False).tolist()))
            torch.manual_seed(seed)  # the grown rows: the same for both settings
            grown = copy.deepcopy(ckpt.model)
            SignatureUpdater(grown, replay_cfg).grow_to(len(store.vocab))
            for name, cfg in settings.items():
                model = copy.deepcopy(ckpt.model)
                updater = SignatureUpdater(model, cfg, seed=seed)
                updater.grow_to(len(store.vocab))
                model.load_state_dict(grown.state_dict())
                with torch.no_grad():
                    probe_before = news_vectors(model.eval(), probe_batch)[1]
                updater.learn_many(fresh, replay)
                with torch.no_grad():
                    probe_after = news_vectors(model.eval(), probe_batch)[1]
                before, after = updater.last_alignment
                drift = float(1 - F.cosine_similarity(probe_before, probe_after).mean())
                trials[name].append((before, after, parent, drift))
        print(f"  {store.records[item].news_id}: " + "; ".join(
            f"{n} {np.mean([t[0] for t in trials[n][-seeds:]]):.3f} -> {np.mean([t[1] for t in trials[n][-seeds:]]):.3f}"
            for n in settings), flush=True)
    out = {}
    for name, rows in trials.items():
        a = np.asarray(rows)
        out[name] = {
            "trials": len(a), "improved": int((a[:, 1] > a[:, 0]).sum()), "above_parent": int((a[:, 1] > a[:, 2]).sum()),
            "alignment_before_mean": round(float(a[:, 0].mean()), 4), "alignment_after_mean": round(float(a[:, 1].mean()), 4),
            "alignment_parent_mean": round(float(a[:, 2].mean()), 4), "known_drift_mean": round(float(a[:, 3].mean()), 5),
            "known_drift_max": round(float(a[:, 3].max()), 5), "config": settings[name].model_dump(include=set(BASELINE)),
        }
    return out


if __name__ == "__main__":
    main()
