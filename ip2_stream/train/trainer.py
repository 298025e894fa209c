"""Stage 1 (contrastive pre-training of the news encoder) and stage 2 (click fine-tuning).

Both loops are plain PyTorch with manual batching: seeded, single process, a progress bar
with loss and throughput, and health signals (gate saturation, entity-tower gradient norm,
signature collapse) logged per epoch and returned in the run summary.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from tqdm.auto import tqdm

from ip2_stream.data.dataset import Behaviors
from ip2_stream.eval.metrics import rank_metrics
from ip2_stream.model.ip2 import IP2Model
from ip2_stream.train.features import NewsFeatures, encode_batch, history_matrix
from ip2_stream.train.losses import click_loss, contrastive_losses

logger = logging.getLogger(__name__)


class PretrainConfig(BaseModel):
    """Stage 1: in-batch InfoNCE on train news (reference values)."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(2, ge=0)
    batch_size: int = Field(128, ge=2)
    lr: float = 1e-5
    warmup: float = Field(0.1, ge=0, le=1)
    tau: float = 0.1
    noise_dropout: float = 0.1
    loss_weights: tuple[float, float, float] = (3.0, 2.0, 2.0)


class FinetuneConfig(BaseModel):
    """Stage 2: 1 positive + K in-impression negatives, cross-entropy (reference values)."""

    model_config = ConfigDict(extra="forbid")

    epochs: int = Field(15, ge=0)
    batch_size: int = Field(64, ge=1)
    lr_encoder: float = Field(1e-5, description="pretrained transformer and title pooler")
    lr_rest: float = 1e-4
    warmup: float = Field(0.1, ge=0, le=1)
    negatives: int = Field(4, ge=1)
    negative_source: Literal["impression", "global"] = "impression"
    patience: int = Field(2, ge=1, description="epochs without a better validation AUC before stopping")
    eval_batch_size: int = 256
    max_samples_per_epoch: int | None = Field(None, description="cap for quick runs")


@contextmanager
def repeatable(seed: int):
    """Seed torch and use deterministic kernels inside the block, restoring the previous mode after.

    Multi-threaded CPU backward passes otherwise sum in varying order (results differ in the
    8th digit from run to run); with deterministic kernels a seed fixes a run bit for bit.
    """
    previous = torch.are_deterministic_algorithms_enabled()
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


def warmup_schedule(total_steps: int, warmup: float) -> Callable[[int], float]:
    """Linear warm-up over the first ``warmup`` share of steps, then constant."""
    steps = max(1, int(total_steps * warmup))
    return lambda step: min(1.0, (step + 1) / steps)


def _grad_norm(params) -> float:
    grads = [p.grad.detach().norm() for p in params if p.grad is not None]
    return float(torch.stack(grads).norm()) if grads else 0.0


@torch.no_grad()
def signature_collapse(model: IP2Model, feats: NewsFeatures, news: np.ndarray, sample: int = 512, seed: int = 0) -> float | None:
    """Mean pairwise cosine of signature vectors of a sample of news (1.0 = collapsed)."""
    if model.news.entity is None or not len(news):
        return None
    pick = np.random.default_rng(seed).choice(news, size=min(sample, len(news)), replace=False)
    was = model.training
    model.eval()
    ids = feats.entity_ids[torch.from_numpy(pick)]
    sig = F.normalize(model.news.entity.signature(ids[:, : int(feats.entity_len[pick].max())]), dim=-1)
    model.train(was)
    sim = sig @ sig.T
    n = len(sig)
    return float((sim.sum() - n) / (n * (n - 1))) if n > 1 else None


# --------------------------------------------------------------------------------------
# stage 1
# --------------------------------------------------------------------------------------
def pretrain(model: IP2Model, feats: NewsFeatures, news: np.ndarray, cfg: PretrainConfig, seed: int = 0,
             progress: bool = True) -> dict:
    """Contrastive pre-training of both news towers on ``news`` (corpus indices of train news).

    Returns a summary with the loss per epoch and the signature collapse before and after.
    """
    if model.news.title is None or model.news.entity is None:
        raise ValueError("contrastive pre-training needs both news towers")
    with repeatable(seed):
        return _pretrain(model, feats, news, cfg, seed, progress)


def _pretrain(model: IP2Model, feats: NewsFeatures, news: np.ndarray, cfg: PretrainConfig, seed: int, progress: bool) -> dict:
    rng = np.random.default_rng(seed)
    params = [p for p in model.news.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    steps_per_epoch = max(1, len(news) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_schedule(steps_per_epoch * cfg.epochs, cfg.warmup))
    summary = {"collapse_before": signature_collapse(model, feats, news, seed=seed), "epochs": []}
    model.train()
    for epoch in range(cfg.epochs):
        order = rng.permutation(news)
        losses, started = [], time.perf_counter()
        bar = tqdm(range(steps_per_epoch), desc=f"pretrain {epoch + 1}/{cfg.epochs}", disable=not progress, unit="step")
        for step in bar:
            batch = torch.from_numpy(order[step * cfg.batch_size : (step + 1) * cfg.batch_size])
            t, g = feats.encode(model, batch, title_dropout=False)  # [B, D] each
            out = contrastive_losses(t, g, F.dropout(t, cfg.noise_dropout), F.dropout(g, cfg.noise_dropout), cfg.tau, cfg.loss_weights)
            opt.zero_grad()
            out["loss"].backward()
            opt.step()
            sched.step()
            losses.append(float(out["loss"].detach()))
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}", news_per_s=f"{(step + 1) * len(batch) / (time.perf_counter() - started):.0f}")
        record = {"epoch": epoch + 1, "loss": float(np.mean(losses)) if losses else None,
                  "collapse": signature_collapse(model, feats, news, seed=seed)}
        logger.info("pretrain epoch %d: loss %.4f, signature collapse %.3f", epoch + 1, record["loss"] or 0, record["collapse"] or 0)
        summary["epochs"].append(record)
    return summary


# --------------------------------------------------------------------------------------
# stage 2
# --------------------------------------------------------------------------------------
@dataclass
class Samples:
    """One training sample per (impression, clicked news): candidates [S, 1+K], impression [S]."""

    imps: np.ndarray
    cands: np.ndarray


def click_samples(beh: Behaviors, imps: np.ndarray, k: int, rng: np.random.Generator,
                  source: Literal["impression", "global"] = "impression", pool: np.ndarray | None = None) -> Samples:
    """Pair each click of ``imps`` with ``k`` negatives, without replacement.

    ``impression``: negatives from the same impression's non-clicked candidates (positives
    that cannot get ``k`` are dropped). ``global``: negatives drawn from ``pool`` (the sanity
    check of the seed card).
    """
    out_imps, out_cands = [], []
    for i in imps:
        cands, labels = beh.candidates(int(i)), beh.candidate_labels(int(i))
        pos, neg = cands[labels == 1], cands[labels == 0]
        for p in pos:
            if source == "impression":
                if len(neg) < k:
                    continue
                negs = rng.choice(neg, size=k, replace=False)
            else:
                negs = rng.choice(pool, size=k, replace=False)
            out_imps.append(i)
            out_cands.append(np.concatenate([[p], negs]))
    if not out_imps:
        return Samples(np.zeros(0, dtype=np.int64), np.zeros((0, k + 1), dtype=np.int64))
    return Samples(np.asarray(out_imps, dtype=np.int64), np.stack(out_cands).astype(np.int64))


@torch.no_grad()
def score_impressions(model: IP2Model, feats: NewsFeatures, beh: Behaviors, history_len: int,
                      imps: np.ndarray | None = None, batch_size: int = 256, progress: bool = False) -> np.ndarray:
    """Scores for every candidate row of ``beh`` (or of the impressions ``imps``), CSR-aligned.

    News vectors are computed once for every news item involved, then users in batches.
    Gate values seen along the way are kept in ``model.gate_log``.
    """
    was = model.training
    model.eval()
    imps = np.arange(len(beh)) if imps is None else np.asarray(imps)
    rows = np.concatenate([np.arange(beh.cand_ptr[i], beh.cand_ptr[i + 1]) for i in imps]) if len(imps) else np.zeros(0, np.int64)
    needed = np.unique(np.concatenate([beh.cand_idx[rows], *[beh.history(int(i))[-history_len:] for i in imps]])) if len(imps) else np.zeros(0, np.int64)
    pos_of = np.zeros(len(feats.entity_ids), dtype=np.int64)  # corpus news index -> row of R_t / R_e
    pos_of[needed] = np.arange(len(needed))
    r_t_parts, r_e_parts = [], []
    for lo in range(0, len(needed), 1024):
        r_t, r_e = feats.encode(model, torch.from_numpy(needed[lo : lo + 1024]), title_dropout=False)
        r_t_parts.append(r_t)
        r_e_parts.append(r_e)
    R_t = torch.cat(r_t_parts) if r_t_parts and r_t_parts[0] is not None else None
    R_e = torch.cat(r_e_parts) if r_e_parts and r_e_parts[0] is not None else None
    scores = np.zeros(len(beh.cand_idx), dtype=np.float64)
    gates = {"user": [], "candidate": []}
    for lo in tqdm(range(0, len(imps), batch_size), desc="scoring", disable=not progress, unit="batch"):
        chunk = imps[lo : lo + batch_size]
        hist, mask = history_matrix(beh, chunk, history_len)
        hpos = torch.from_numpy(pos_of[np.maximum(hist, 0)])
        m = torch.from_numpy(mask)
        H_t = R_t[hpos] * m.unsqueeze(-1) if R_t is not None else None
        H_e = R_e[hpos] * m.unsqueeze(-1) if R_e is not None else None
        u_t, u_e = model.user_vectors(H_t, H_e, m)
        sizes = beh.cand_ptr[chunk + 1] - beh.cand_ptr[chunk]
        cmask = np.arange(sizes.max())[None, :] < sizes[:, None]  # [b, Cmax]
        crow = beh.cand_ptr[chunk][:, None] + np.where(cmask, np.arange(sizes.max())[None, :], 0)
        cpos = torch.from_numpy(pos_of[beh.cand_idx[crow]])  # [b, Cmax]
        s = model.score(R_t[cpos] if R_t is not None else None, R_e[cpos] if R_e is not None else None, u_t, u_e)
        scores[crow[cmask]] = s.numpy()[cmask]
        if model.last_gates:
            gates["user"].extend(model.last_gates["user"].tolist())
            gates["candidate"].extend(model.last_gates["candidate"].numpy()[cmask].tolist())
    model.gate_log = gates
    model.train(was)
    return scores


def gate_summary(gates: dict[str, list[float]]) -> dict | None:
    """Mean, spread and saturation (share beyond 0.05 / 0.95) of the user and candidate gates."""
    if not gates or not gates.get("user"):
        return None
    out = {}
    for name, values in gates.items():
        v = np.asarray(values)
        out[name] = {"mean": float(v.mean()), "std": float(v.std()), "p05": float(np.quantile(v, 0.05)),
                     "p95": float(np.quantile(v, 0.95)), "saturated": float(((v > 0.95) | (v < 0.05)).mean())}
    return out


def _param_groups(model: IP2Model, cfg: FinetuneConfig) -> list[dict]:
    encoder_ids = set()
    if model.news.title is not None:
        for p in list(model.news.title.encoder.top_layers.parameters()) + list(model.news.title.pool.parameters()):
            encoder_ids.add(id(p))
    enc = [p for p in model.parameters() if p.requires_grad and id(p) in encoder_ids]
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in encoder_ids]
    return [g for g in ({"params": enc, "lr": cfg.lr_encoder}, {"params": rest, "lr": cfg.lr_rest}) if g["params"]]


@dataclass
class FitResult:
    best_state: dict
    best_epoch: int
    best_valid_auc: float
    history: list[dict] = field(default_factory=list)


def finetune(model: IP2Model, feats: NewsFeatures, beh: Behaviors, train_imps: np.ndarray, valid_imps: np.ndarray,
             cfg: FinetuneConfig, history_len: int, seed: int = 0, progress: bool = True) -> FitResult:
    """Fine-tune on ``train_imps`` of ``beh``, selecting the epoch with the best validation AUC.

    Impressions with an empty history are dropped from training and validation.
    """
    with repeatable(seed):
        return _finetune(model, feats, beh, train_imps, valid_imps, cfg, history_len, seed, progress)


def _finetune(model: IP2Model, feats: NewsFeatures, beh: Behaviors, train_imps: np.ndarray, valid_imps: np.ndarray,
              cfg: FinetuneConfig, history_len: int, seed: int, progress: bool) -> FitResult:
    rng = np.random.default_rng(seed)
    has_hist = np.diff(beh.hist_ptr) > 0
    train_imps = train_imps[has_hist[train_imps]]
    valid_imps = valid_imps[has_hist[valid_imps]]
    pool = np.unique(beh.cand_idx)
    opt = torch.optim.AdamW(_param_groups(model, cfg), eps=1e-8, weight_decay=0.0)
    probe = click_samples(beh, train_imps, cfg.negatives, np.random.default_rng(seed), cfg.negative_source, pool)
    per_epoch = len(probe.imps) if cfg.max_samples_per_epoch is None else min(len(probe.imps), cfg.max_samples_per_epoch)
    steps_per_epoch = max(1, -(-per_epoch // cfg.batch_size))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_schedule(steps_per_epoch * max(cfg.epochs, 1), cfg.warmup))
    entity_params = [p for p in model.news.entity.parameters()] if model.news.entity is not None else []
    result = FitResult(copy.deepcopy(model.state_dict()), 0, float("-inf"))
    stale = 0
    for epoch in range(cfg.epochs):
        model.train()
        samples = click_samples(beh, train_imps, cfg.negatives, rng, cfg.negative_source, pool)
        order = rng.permutation(len(samples.imps))[:per_epoch]
        losses, grad_norms, started = [], [], time.perf_counter()
        bar = tqdm(range(steps_per_epoch), desc=f"train {epoch + 1}/{cfg.epochs}", disable=not progress, unit="step")
        for step in bar:
            idx = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
            if not len(idx):
                break
            hist, _ = history_matrix(beh, samples.imps[idx], history_len)
            c_t, c_e, h_t, h_e, mask = encode_batch(model, feats, samples.cands[idx], hist)
            loss = click_loss(model(c_t, c_e, h_t, h_e, mask))  # scores [B, 1+K]
            opt.zero_grad()
            loss.backward()
            grad_norms.append(_grad_norm(entity_params))
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            done = min((step + 1) * cfg.batch_size, per_epoch)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}", samples_per_s=f"{done / (time.perf_counter() - started):.0f}")
        scores = score_impressions(model, feats, beh, history_len, valid_imps, cfg.eval_batch_size)
        valid = _subset_metrics(beh, valid_imps, scores)
        record = {
            "epoch": epoch + 1, "loss": float(np.mean(losses)) if losses else None, "valid_auc": valid.auc,
            "valid_mrr": valid.mrr, "entity_grad_norm": float(np.mean(grad_norms)) if grad_norms else None,
            "gates": gate_summary(model.gate_log), "seconds": round(time.perf_counter() - started, 1),
            "samples": int(per_epoch),
        }
        logger.info("epoch %d: loss %.4f, valid AUC %.4f, entity grad norm %.4f", epoch + 1, record["loss"] or 0,
                    valid.auc, record["entity_grad_norm"] or 0)
        result.history.append(record)
        if valid.auc > result.best_valid_auc:
            result.best_valid_auc, result.best_epoch, stale = valid.auc, epoch + 1, 0
            result.best_state = copy.deepcopy(model.state_dict())
        else:
            stale += 1
            if stale >= cfg.patience:
                logger.info("stopping: no better validation AUC for %d epochs", stale)
                break
    model.load_state_dict(result.best_state)
    return result


def _subset_metrics(beh: Behaviors, imps: np.ndarray, scores: np.ndarray):
    """Metrics over the impressions ``imps`` only."""
    mask = np.zeros(len(beh), dtype=bool)
    mask[imps] = True
    return rank_metrics(beh.cand_ptr, beh.labels, scores, mask=mask)
