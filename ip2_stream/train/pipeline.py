"""From a data folder to trained, evaluated checkpoints: what ``pretrain``, ``train``,
``evaluate`` and ``ablate`` share.

A :class:`Workspace` holds the loaded corpus, the vocabulary (entities, categories and
subcategories of the train split), the title encoder with its frozen-bottom cache and the
per-news features; ablations reuse one workspace for every variant.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ip2_stream.data.dataset import Behaviors, Corpus, load_corpus
from ip2_stream.data.vocab import Vocab
from ip2_stream.errors import DataError
from ip2_stream.eval.report import evaluation_report
from ip2_stream.model.checkpoint import load_checkpoint, save_checkpoint
from ip2_stream.model.ip2 import IP2Config, IP2Model, build_model
from ip2_stream.model.text import BottomCache, TitleEncoder, load_hf
from ip2_stream.train.features import NewsFeatures
from ip2_stream.train.trainer import (
    FinetuneConfig,
    PretrainConfig,
    finetune,
    gate_summary,
    pretrain,
    score_impressions,
    signature_collapse,
)

logger = logging.getLogger(__name__)
DAY = 86400


def encoder_cache_dir(cache_dir: Path | None) -> Path:
    base = Path(cache_dir) if cache_dir is not None else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ip2-stream"
    return base / "encoders"


def data_fingerprint(corpus: Corpus) -> dict:
    """Cheap identity of the data: size, mtime and a hash of the head and tail of each file."""
    out = {}
    for role, split in corpus.split_dirs.items():
        h = hashlib.sha1()
        for name in ("news.tsv", "behaviors.tsv"):
            path = split.path / name
            stat = path.stat()
            h.update(f"{name}:{stat.st_size}".encode())
            with open(path, "rb") as handle:
                h.update(handle.read(65536))
                handle.seek(max(0, stat.st_size - 65536))
                h.update(handle.read())
        out[role] = {"path": str(split.path), "sha1": h.hexdigest()[:16]}
    return out


@dataclass
class Workspace:
    corpus: Corpus
    vocab: Vocab
    encoder: TitleEncoder | None
    cache: BottomCache | None
    feats: NewsFeatures

    def train_news(self) -> np.ndarray:
        """Corpus indices of the news shown or clicked in the train split (all news without one)."""
        if "train" not in self.corpus.splits:
            return np.arange(self.corpus.num_news)
        beh = self.corpus.splits["train"]
        return np.unique(np.concatenate([beh.hist_idx, beh.cand_idx]))


def open_workspace(data: Path, roles: tuple[str, ...], cfg: IP2Config, cache_dir: Path | None = None,
                   skip_bad: bool = False, vocab: Vocab | None = None, encoder: TitleEncoder | None = None) -> Workspace:
    """Load the corpus, build (or take) the vocabulary and encoder, and the per-news features."""
    corpus = load_corpus(data, roles, cache_dir, skip_bad)
    if "train" not in corpus.splits and vocab is None:
        raise DataError(f"{data}: a train split is needed to build the vocabulary")
    vocab = vocab if vocab is not None else corpus.build_vocab(("train",))
    cache = None
    if cfg.towers != "entity":
        if encoder is None:
            encoder = TitleEncoder(*load_hf(cfg.text_encoder), trainable_layers=cfg.resolved_trainable_layers(), max_len=cfg.max_title_len)
        cache = BottomCache(encoder, encoder_cache_dir(cache_dir))
    feats = NewsFeatures.build(corpus, vocab, cache, cfg.max_entities)
    return Workspace(corpus, vocab, encoder, cache, feats)


def new_model(ws: Workspace, cfg: IP2Config, seed: int) -> IP2Model:
    """A freshly initialised model; TransE rows come from ``entity_embedding.vec`` when configured."""
    torch.manual_seed(seed)
    model = build_model(cfg, ws.encoder.clone() if ws.encoder is not None else None, len(ws.vocab))
    if cfg.entity_init == "transe" and model.news.entity is not None:
        ids, rows = [], []
        for tid in range(1, len(ws.vocab)):
            kind, key = ws.vocab.token(tid)
            vec = ws.corpus.entity_vectors.get(key) if kind == "entity" else None
            if vec is not None:
                if len(vec) != cfg.entity_dim:
                    raise DataError(f"entity_embedding.vec has {len(vec)}-d vectors; model.entity_dim is {cfg.entity_dim}")
                ids.append(tid)
                rows.append(torch.from_numpy(np.asarray(vec, dtype=np.float32)))
        if ids:
            model.news.entity.table.set_rows(torch.tensor(ids), torch.stack(rows))
        logger.info("entity table: %d of %d entities from entity_embedding.vec, the rest random",
                    len(ids), ws.vocab.count("entity"))
    return model


def validation_split(beh: Behaviors) -> tuple[np.ndarray, np.ndarray]:
    """Fit / validation impressions of the train split: validation is its last day."""
    day = beh.time // DAY
    valid = day == day.max()
    if valid.all():
        raise DataError("the train split covers a single day; no validation day can be carved from it")
    return np.flatnonzero(~valid), np.flatnonzero(valid)


def fit(ws: Workspace, model: IP2Model, cfg: IP2Config, ft: FinetuneConfig, seed: int, progress: bool = True) -> dict:
    """Stage 2 with model selection on the last train day; returns the training summary."""
    beh = ws.corpus.splits["train"]
    fit_imps, valid_imps = validation_split(beh)
    result = finetune(model, ws.feats, beh, fit_imps, valid_imps, ft, cfg.history_len, seed, progress)
    return {"best_epoch": result.best_epoch, "best_valid_auc": result.best_valid_auc, "epochs": result.history,
            "fit_impressions": int(len(fit_imps)), "valid_impressions": int(len(valid_imps))}


def evaluate_model(ws: Workspace, model: IP2Model, cfg: IP2Config, role: str, name: str, progress: bool = False) -> dict:
    """Evaluation report of ``model`` on split ``role`` plus its health signals."""
    beh = ws.corpus.splits[role]
    scores = score_impressions(model, ws.feats, beh, cfg.history_len, progress=progress)
    report = evaluation_report(ws.corpus, role, scores, name)
    report["health"] = {"gates": gate_summary(model.gate_log),
                        "signature_collapse": signature_collapse(model, ws.feats, ws.train_news())}
    return report


def run_pretrain(data: Path, out: Path, cfg: IP2Config, pt: PretrainConfig, seed: int,
                 cache_dir: Path | None = None, skip_bad: bool = False) -> dict:
    ws = open_workspace(data, ("train",), cfg, cache_dir, skip_bad)
    model = new_model(ws, cfg, seed)
    summary = pretrain(model, ws.feats, ws.train_news(), pt, seed)
    save_checkpoint(out, model, cfg, ws.vocab, stage="pretrain", pretrain=summary, data=data_fingerprint(ws.corpus), seed=seed)
    return {"checkpoint": str(out), **summary}


def run_train(data: Path, out: Path, cfg: IP2Config, ft: FinetuneConfig, seed: int, init: Path | None = None,
              cache_dir: Path | None = None, skip_bad: bool = False) -> dict:
    """Stage 2 from scratch or from ``init``; reports dev (when present) after model selection."""
    from ip2_stream.data.dataset import find_splits

    roles = tuple(r for r in ("train", "dev") if r in find_splits(data))
    parent = None
    if init is not None:
        ckpt = load_checkpoint(init)
        cfg, model, parent = ckpt.config, ckpt.model, str(init)
        ws = open_workspace(data, roles, cfg, cache_dir, skip_bad, vocab=ckpt.vocab, encoder=ckpt.encoder)
    else:
        ws = open_workspace(data, roles, cfg, cache_dir, skip_bad)
        model = new_model(ws, cfg, seed)
    summary = fit(ws, model, cfg, ft, seed)
    dev = evaluate_model(ws, model, cfg, "dev", str(out)) if "dev" in ws.corpus.splits else None
    save_checkpoint(out, model, cfg, ws.vocab, stage="train", parent=parent, train=summary, seed=seed,
                    data=data_fingerprint(ws.corpus), metrics=dev)
    return {"checkpoint": str(out), "train": summary, "dev": dev}


def run_evaluate(data: Path, ckpt_path: Path, role: str, cache_dir: Path | None = None, skip_bad: bool = False) -> dict:
    ckpt = load_checkpoint(ckpt_path)
    from ip2_stream.data.dataset import find_splits

    roles = tuple(dict.fromkeys(r for r in ("train", role) if r in find_splits(data)))
    ws = open_workspace(data, roles, ckpt.config, cache_dir, skip_bad, vocab=ckpt.vocab, encoder=ckpt.encoder)
    return evaluate_model(ws, ckpt.model, ckpt.config, role, str(ckpt_path), progress=True)
