"""Stage-2 training throughput: frozen-bottom cache versus recomputing the encoder every step.

Same data (`small` synthetic preset), same batches, same model init; each mode runs in its
own process so its peak memory is its own. Reported for the reference depth (2 trainable top
layers) and for a fully frozen encoder (the CPU default). Usage:

    python bench/train_throughput.py [--steps 15] [--batch 64] [--trainable 2 0]

Last line: {"cached_samples_per_s", "recompute_samples_per_s", "ratio", "peak_rss_mb", "runs": [...]}
(top-level figures are for the first --trainable value); also bench/results/train_throughput.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import finish  # noqa: E402

CHILD = r"""
import json, sys, time
import numpy as np, torch
sys.path.insert(0, {bench!r})
from _common import peak_rss_mb
from ip2_stream.model.ip2 import IP2Config
from ip2_stream.model.text import LiveBottom
from ip2_stream.train import pipeline
from ip2_stream.train.features import NewsFeatures, encode_batch, history_matrix
from ip2_stream.train.losses import click_loss
from ip2_stream.train.trainer import FinetuneConfig, _param_groups, click_samples

torch.manual_seed(0)
cfg = IP2Config(trainable_layers={trainable})
ws = pipeline.open_workspace({data!r}, ("train",), cfg, {cache!r})
feats = ws.feats
if {mode!r} == "recompute":
    live = LiveBottom(ws.encoder)
    feats = NewsFeatures.build(ws.corpus, ws.vocab, live, cfg.max_entities)
model = pipeline.new_model(ws, cfg, 0)
opt = torch.optim.AdamW(_param_groups(model, FinetuneConfig()), weight_decay=0.0)
beh = ws.corpus.splits["train"]
s = click_samples(beh, np.flatnonzero(np.diff(beh.hist_ptr) > 0), 4, np.random.default_rng(0))
B = {batch}
def step(k):
    idx = np.arange(k * B, (k + 1) * B)
    hist, _ = history_matrix(beh, s.imps[idx], cfg.history_len)
    loss = click_loss(model(*encode_batch(model, feats, s.cands[idx], hist)))
    opt.zero_grad(); loss.backward(); opt.step()
for k in range(2):
    step(k)
t = time.perf_counter()
for k in range(2, 2 + {steps}):
    step(k)
dt = time.perf_counter() - t
print(json.dumps({{"samples_per_s": {steps} * B / dt, "peak_rss_mb": peak_rss_mb()}}))
"""


def run_mode(mode: str, trainable: int, args, data: str, cache: str) -> dict:
    code = CHILD.format(bench=str(Path(__file__).resolve().parent), trainable=trainable, data=data, cache=cache,
                        mode=mode, batch=args.batch, steps=args.steps)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"train_throughput: {mode} (trainable {trainable}) failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=15)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--trainable", type=int, nargs="+", default=[2, 0])
    args = parser.parse_args()
    from ip2_stream.data.synth import SynthConfig, generate

    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        data = f"{tmp}/small"
        generate(SynthConfig.from_preset("small", seed=0), data)
        for trainable in args.trainable:
            row = {"trainable_layers": trainable, "batch": args.batch, "steps": args.steps}
            for mode in ("cached", "recompute"):
                print(f"trainable_layers={trainable}: {mode} ...", flush=True)
                res = run_mode(mode, trainable, args, data, f"{tmp}/cache")
                row[f"{mode}_samples_per_s"] = round(res["samples_per_s"], 2)
                row[f"{mode}_peak_rss_mb"] = round(res["peak_rss_mb"], 1)
            row["ratio"] = round(row["cached_samples_per_s"] / row["recompute_samples_per_s"], 2)
            print(f"  cached {row['cached_samples_per_s']} vs recompute {row['recompute_samples_per_s']} samples/s: x{row['ratio']}", flush=True)
            runs.append(row)
    first = runs[0]
    finish("train_throughput", {
        "cached_samples_per_s": first["cached_samples_per_s"], "recompute_samples_per_s": first["recompute_samples_per_s"],
        "ratio": first["ratio"], "peak_rss_mb": max(first["cached_peak_rss_mb"], first["recompute_peak_rss_mb"]),
        "runs": runs,
    })


if __name__ == "__main__":
    main()
