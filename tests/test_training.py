"""Training on tiny generated data with a tiny Hugging Face encoder: determinism, learning, CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from ip2_stream.model.ip2 import IP2Config
from ip2_stream.train import pipeline
from ip2_stream.train.trainer import FinetuneConfig, PretrainConfig, click_samples, pretrain


def config(path, **kw):
    return IP2Config(text_encoder=str(path), trainable_layers=1, max_title_len=16, news_dim=64, entity_dim=32,
                     see_heads=4, see_ff=64, user_heads=4, history_len=20, **kw)


FT = FinetuneConfig(epochs=3, batch_size=32, lr_rest=2e-3, lr_encoder=1e-3, patience=3)


@pytest.fixture(scope="module")
def workspace(tiny_data, tiny_encoder_path, tmp_path_factory):
    return pipeline.open_workspace(tiny_data, ("train", "dev"), config(tiny_encoder_path), tmp_path_factory.mktemp("c"))


def _run(ws, cfg, seed):
    model = pipeline.new_model(ws, cfg, seed)
    pre = pretrain(model, ws.feats, ws.train_news(), PretrainConfig(epochs=1, batch_size=64, lr=1e-3), seed, progress=False)
    fit = pipeline.fit(ws, model, cfg, FT, seed, progress=False)
    return model, pre, fit


def test_training_is_deterministic_learns_and_beats_chance(workspace, tiny_encoder_path):
    cfg = config(tiny_encoder_path)
    model, pre, fit = _run(workspace, cfg, seed=3)
    _, pre2, fit2 = _run(workspace, cfg, seed=3)
    assert [e["loss"] for e in fit["epochs"]] == [e["loss"] for e in fit2["epochs"]]
    assert pre["epochs"][0]["loss"] == pre2["epochs"][0]["loss"]
    losses = [e["loss"] for e in fit["epochs"]]
    assert losses[-1] < losses[0]
    report = pipeline.evaluate_model(workspace, model, cfg, "dev", "tiny")
    assert report["overall"]["auc"] > 0.55 and report["overall"]["impressions"] > 100
    health = report["health"]
    assert 0 < health["gates"]["user"]["mean"] < 1 and -1 <= health["signature_collapse"] <= 1
    assert all(e["entity_grad_norm"] > 0 for e in fit["epochs"])


def test_samples_pair_each_click_with_in_impression_negatives(workspace):
    beh = workspace.corpus.splits["train"]
    imps = np.arange(50)
    s = click_samples(beh, imps, 4, np.random.default_rng(0))
    for i, row in zip(s.imps, s.cands):
        cands, labels = beh.candidates(i), beh.candidate_labels(i)
        assert labels[list(cands).index(row[0])] == 1
        assert len(set(row[1:])) == 4 and all(labels[list(cands).index(n)] == 0 for n in row[1:])
    clicks_with_4 = sum(int(((beh.candidate_labels(i) == 0).sum() >= 4)) * int(beh.candidate_labels(i).sum()) for i in imps)
    assert len(s.imps) == clicks_with_4  # positives without 4 negatives are dropped


def cli(*args):
    return subprocess.run([sys.executable, "-m", "ip2_stream.cli.main", "--log-level", "WARNING", *args],
                          capture_output=True, text=True, timeout=600)


def test_cli_pretrain_train_evaluate(tiny_data, tiny_encoder_path, tmp_path):
    common = ["--set", f"model.text_encoder={tiny_encoder_path}", "--set", "model.trainable_layers=1",
              "--set", "model.news_dim=64", "--set", "model.entity_dim=32", "--set", "model.see_heads=4",
              "--set", "model.user_heads=4", "--set", f"data.cache_dir={tmp_path / 'c'}", "--set", "finetune.batch_size=32"]
    pre = cli(*common, "pretrain", "--data", str(tiny_data), "--out", str(tmp_path / "pre"), "--epochs", "1")
    assert pre.returncode == 0, pre.stderr[-2000:]
    tr = cli(*common, "train", "--data", str(tiny_data), "--init", str(tmp_path / "pre"), "--out", str(tmp_path / "ft"), "--epochs", "2")
    assert tr.returncode == 0, tr.stderr[-2000:]
    manifest = json.loads((tmp_path / "ft" / "manifest.json").read_text())
    assert manifest["parent"] == str(tmp_path / "pre") and manifest["stage"] == "train" and manifest["metrics"]["overall"]["auc"] > 0
    ev = cli(*common, "evaluate", "--data", str(tiny_data), "--ckpt", str(tmp_path / "ft"), "--json", str(tmp_path / "e.json"))
    assert ev.returncode == 0, ev.stderr[-2000:]
    report = json.loads(ev.stdout)
    assert report["overall"]["auc"] == pytest.approx(manifest["metrics"]["overall"]["auc"])
    assert {"cold_start", "oracle_auc", "health"} <= set(report)
    bad = cli("evaluate", "--data", str(tiny_data), "--ckpt", str(tmp_path / "nothing"))
    assert bad.returncode == 2 and "not a checkpoint" in bad.stderr
