"""Incremental learners of the live loop, as plain classes (the Ray actors wrap them).

- :class:`SignatureUpdater` runs stage-1 contrastive steps on news carrying new entities,
  mixed with a replay sample of older news, updating only the entity tower (its table grows
  to the vocabulary first; the new rows join the optimizer, old rows keep their state).
- :class:`ClickJoiner` joins impressions with their delayed clicks by impression id within an
  event-time window.
- :class:`UserTowerLearner` fine-tunes the user towers and gates on joined impressions
  (1 click + K in-impression negatives, cross-entropy), news vectors held fixed.

Following River, ``learn_many`` returns nothing; what a learner saw is in its attributes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from ip2_stream.model.ip2 import IP2Model
from ip2_stream.stream.records import ClickRecord, ImpressionRecord
from ip2_stream.train.losses import click_loss, contrastive_losses


class OnlineConfig(BaseModel):
    """Cadence and step sizes of the live learners."""

    model_config = ConfigDict(extra="forbid")

    see_period_s: float = Field(1.0, gt=0, description="SEE update every this many seconds while new entities wait...")
    see_burst_entities: int = Field(64, ge=1, description="...or at once when this many wait")
    see_poll_s: float = Field(0.1, gt=0, description="how often the SEE updater looks for new news")
    see_recent_s: float = Field(300.0, ge=0, description="news about an entity whose row is younger than this are learned from too")
    see_steps: int = Field(8, ge=1)
    see_lr: float = Field(3e-5, ge=0, description="learning rate of the SEE weights and known entity rows")
    see_new_row_lr: float = Field(5e-2, ge=0, description="learning rate of newly grown entity rows")
    see_replay: int = Field(64, ge=0, description="older news mixed into each SEE step")
    see_max_fresh: int = Field(256, ge=1, description="fresh news per SEE batch; a larger backlog is learned in several batches")
    see_align_weight: float = Field(1.0, ge=0, description="weight of the fresh news' title alignment term")
    see_anchor_weight: float = Field(1.0, ge=0, description="weight of the replay news' stay-where-you-were term")
    tau: float = 0.1
    user_lr: float = 1e-4
    user_batch: int = Field(32, ge=1)
    negatives: int = Field(4, ge=1)
    join_window_s: float = Field(3600.0, gt=0, description="event-time wait for an impression's clicks")
    news_wait_s: float = Field(60.0, ge=0, description="how long a joined impression waits for its news to be ingested")
    history_len: int = 50
    checkpoint_period_s: float = Field(2.0, gt=0, description="user-tower trainer publishes at most this often")


@dataclass(frozen=True)
class NewsBatch:
    """Model inputs of n news items."""

    bottom: np.ndarray  # [n, T, H] frozen-bottom title states (float16)
    mask: np.ndarray  # [n, T] token mask
    entity_ids: np.ndarray  # [n, S] entity sequences, 0-padded

    def title_inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(bottom [n, T, H] float32, mask [n, T])`` as tensors (copies: arrays from Ray are read-only)."""
        return torch.from_numpy(self.bottom.astype(np.float32)), torch.tensor(self.mask)


class FeatureSource(Protocol):
    """Where learners get news inputs (the news store, or the ingestion actor over Ray)."""

    def seqs(self, news_ids: Sequence[str]) -> np.ndarray: ...

    def batch(self, seqs: Sequence[int]) -> NewsBatch: ...


def trimmed_entities(entity_ids: np.ndarray, rows: int) -> torch.Tensor:
    """Entity sequences [n, S] for a table of ``rows`` rows.

    Ids the table has no row for yet (the vocabulary grew, the table not) become padding,
    as unknown ids are dropped offline; columns after the last id are cut (the 2 topic slots stay).
    """
    ids = np.where(entity_ids < rows, entity_ids, 0)
    width = max(2, int(np.flatnonzero((ids > 0).any(0)).max(initial=1)) + 1)
    return torch.from_numpy(np.ascontiguousarray(ids[:, :width]))


def news_vectors(model: IP2Model, batch: NewsBatch, title_dropout: bool = False):
    """``(r_t, r_e)`` [n, D] of a :class:`NewsBatch`."""
    bottom, mask = batch.title_inputs() if model.news.title is not None else (None, None)
    ids = trimmed_entities(batch.entity_ids, len(model.news.entity.table)) if model.news.entity is not None else None
    return model.news(bottom, mask, ids, title_dropout=title_dropout)


# --------------------------------------------------------------------------------------
# signature entity encoder
# --------------------------------------------------------------------------------------
def see_batches(fresh: Sequence[int], known: int, cfg: OnlineConfig, rng: np.random.Generator) -> list[tuple[list[int], list[int]]]:
    """``(fresh chunk, replay sample)`` pairs of news sequence numbers for one SEE update.

    Every fresh news item is in exactly one chunk of at most ``see_max_fresh``; each replay
    sample holds up to ``see_replay`` of the ``known`` news (sequence numbers below it) that are
    not fresh.

    Args:
        fresh: sequence numbers of the news carrying new entities.
        known: how many news the store holds.
        cfg: ``see_max_fresh`` and ``see_replay``.
        rng: draws the replay samples.

    Example:
        >>> [(len(f), len(r)) for f, r in see_batches(range(10, 15), 15, OnlineConfig(see_max_fresh=3, see_replay=4), np.random.default_rng(0))]
        [(3, 4), (2, 4)]
    """
    fresh = sorted(int(s) for s in fresh)
    older = np.setdiff1d(np.arange(known), fresh)
    out = []
    for lo in range(0, len(fresh), cfg.see_max_fresh):
        pick = rng.choice(older, size=min(cfg.see_replay, len(older)), replace=False) if len(older) else []
        out.append((fresh[lo : lo + cfg.see_max_fresh], sorted(int(s) for s in pick)))
    return out


def see_summary(stats: list[tuple]) -> dict:
    """Version metrics of one SEE update from its batches' ``(n, before, after, drift, loss)``:
    alignment weighted by fresh news, drift and loss averaged over batches (None without batches)."""
    if not stats:
        return {"see_loss": None, "fresh_alignment_before": None, "fresh_alignment_after": None, "replay_drift": None}
    a = np.asarray([[np.nan if v is None else v for v in row] for row in stats], dtype=float)
    drift = a[:, 3][~np.isnan(a[:, 3])]
    return {"see_loss": float(a[:, 4].mean()), "fresh_alignment_before": float(np.average(a[:, 1], weights=a[:, 0])),
            "fresh_alignment_after": float(np.average(a[:, 2], weights=a[:, 0])),
            "replay_drift": float(drift.mean()) if len(drift) else None}


@dataclass
class SEESchedule:
    """When the SEE updater learns: every ``see_period_s`` while news about new entities wait, or
    at once when ``see_burst_entities`` entities without a row wait. It collects those news: the
    ones carrying an entity without a row, and the ones about an entity whose row is younger than
    ``see_recent_s`` (a new entity keeps learning from the news that follow its first).

    Args:
        cfg: ``see_period_s`` and ``see_burst_entities``.
        clock: monotonic seconds (injectable for tests).

    Example:
        >>> t = [0.0]
        >>> s = SEESchedule(OnlineConfig(see_period_s=5, see_burst_entities=3), clock=lambda: t[0])
        >>> s.scan(0, [[1], [7], [2, 8]], rows=5); s.due()  # 7 and 8 have no row; nothing learned yet
        True
        >>> news, entities = s.take(); news, sorted(entities)
        ([1, 2], [7, 8])
        >>> t[0] = 1.0; s.scan(3, [[9]], rows=9); s.due()  # 1 entity waits, 1 s after the update
        False
    """

    cfg: OnlineConfig
    clock: Callable[[], float] = time.monotonic
    pending: list[int] = field(default_factory=list)  # news (sequence numbers) to learn from
    waiting: set[int] = field(default_factory=set)  # ids of their entities without a row
    recent: dict[int, float] = field(default_factory=dict)  # entity id -> when its row was handed over
    last_update: float = float("-inf")

    def scan(self, start: int, entity_ids: Sequence[Sequence[int]], rows: int) -> None:
        """Note the news ``start, start + 1, ...`` about entities without a row (ids from ``rows``
        on) or with a recent one."""
        horizon = self.clock() - self.cfg.see_recent_s
        for i, ids in enumerate(entity_ids):
            new = {e for e in ids if e is not None and e >= rows}
            if new or any(self.recent.get(e, float("-inf")) >= horizon for e in ids):
                self.pending.append(start + i)
                self.waiting |= new

    def due(self) -> bool:
        return bool(self.pending) and (len(self.waiting) >= self.cfg.see_burst_entities
                                       or self.clock() - self.last_update >= self.cfg.see_period_s)

    def take(self) -> tuple[list[int], set[int]]:
        """The pending news and waiting entities, handed over for an update (the period restarts)."""
        out = (self.pending, self.waiting)
        now = self.clock()
        self.recent = {e: t for e, t in self.recent.items() if t >= now - self.cfg.see_recent_s}
        self.recent.update(dict.fromkeys(self.waiting, now))
        self.pending, self.waiting, self.last_update = [], set(), now
        return out


class SignatureUpdater:
    """Incremental contrastive updates of the entity tower.

    Args:
        model: the model whose ``news.entity`` (table, SEE, projection) is updated.
        cfg: cadence and step sizes.
        seed: seeds the noise of the contrastive copies.
    """

    def __init__(self, model: IP2Model, cfg: OnlineConfig, seed: int = 0) -> None:
        if model.news.entity is None or model.news.title is None:
            raise ValueError("the SEE updater needs both news towers")
        self.model, self.cfg = model, cfg
        self.generator = torch.Generator().manual_seed(seed)
        params = [p for p in model.news.entity.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.see_lr, weight_decay=0.0)
        self.updates = 0
        self.last_loss: float | None = None
        self.last_alignment: tuple[float, float] | None = None  # fresh news' mean cos(r_t, r_e), before and after
        self.last_drift: float | None = None  # replay news' mean 1 - cos(r_e before, r_e after)

    def grow_to(self, vocab_size: int) -> int:
        """Add table rows up to ``vocab_size``; returns how many were added."""
        table = self.model.news.entity.table
        missing = vocab_size - len(table)
        if missing > 0:
            new = table.grow(missing)
            self.optimizer.add_param_group({"params": [new], "lr": self.cfg.see_new_row_lr})
        return max(missing, 0)

    def learn_many(self, fresh: NewsBatch, replay: NewsBatch | None = None) -> None:
        """``see_steps`` steps on ``fresh`` news plus ``replay`` news; the title tower stays fixed.

        The loss is the stage-1 contrastive loss over the whole batch, plus
        ``see_align_weight`` x (1 - cos(r_e, r_t)) over the fresh news (a new entity has a single
        positive, its own title, and InfoNCE alone may lower that item's cosine while raising its
        margin over the other titles), plus ``see_anchor_weight`` x (1 - cos(r_e, r_e before the
        update)) over the replay news, so the signatures of known news stay where the ranker
        and the user towers learned them. New rows learn at ``see_new_row_lr``, everything else
        at the much smaller ``see_lr``.

        Steps run with the encoder's own dropout off (eval mode): through 0.5 transformer
        dropout the gradient of a lone fresh item is mostly noise. The contrastive noise comes
        from dropout copies drawn from this learner's generator, so an update is repeatable.
        """
        batch = fresh if replay is None or not len(replay.entity_ids) else NewsBatch(
            np.concatenate([fresh.bottom, replay.bottom]), np.concatenate([fresh.mask, replay.mask]),
            np.concatenate([fresh.entity_ids, replay.entity_ids]))
        if len(batch.entity_ids) < 2:
            self.last_alignment = self.last_drift = None
            return  # in-batch InfoNCE needs at least one negative; wait for more news
        self.model.eval()
        ids = trimmed_entities(batch.entity_ids, len(self.model.news.entity.table))
        n = len(fresh.entity_ids)  # rows [0, n) are fresh, the rest replay
        with torch.no_grad():
            t = self.model.news.title(*batch.title_inputs(), dropout=False)  # [B, D]
            g_before = self.model.news.entity(ids)  # [B, D]
        losses = []
        for _ in range(self.cfg.see_steps):
            g = self.model.news.entity(ids)  # [B, D]
            out = contrastive_losses(t, g, self._dropout(t), self._dropout(g), self.cfg.tau)
            loss = out["loss"] + self.cfg.see_align_weight * (1 - F.cosine_similarity(g[:n], t[:n])).mean()
            if len(g) > n:
                loss = loss + self.cfg.see_anchor_weight * (1 - F.cosine_similarity(g[n:], g_before[n:])).mean()
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            losses.append(float(loss.detach()))
        with torch.no_grad():
            g_after = self.model.news.entity(ids)
        self.updates += 1
        self.last_loss = float(np.mean(losses))
        self.last_alignment = (float(F.cosine_similarity(t[:n], g_before[:n]).mean()), float(F.cosine_similarity(t[:n], g_after[:n]).mean()))
        self.last_drift = float(1 - F.cosine_similarity(g_before[n:], g_after[n:]).mean()) if len(ids) > n else None

    def _dropout(self, x: torch.Tensor, p: float = 0.1) -> torch.Tensor:
        """Dropout drawn from this learner's own generator, so an update is repeatable."""
        keep = (torch.rand(x.shape, generator=self.generator) >= p).to(x.dtype)
        return x * keep / (1 - p)


# --------------------------------------------------------------------------------------
# user towers
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Joined:
    impression: ImpressionRecord
    click: ClickRecord


@dataclass
class ClickJoiner:
    """Join impressions and clicks by impression id, whichever arrives first.

    Args:
        window_s: an impression (or click) waits this long in event time for its partner.
    """

    window_s: float
    impressions: dict[int, ImpressionRecord] = field(default_factory=dict)
    clicks: dict[int, ClickRecord] = field(default_factory=dict)
    expired: int = 0

    def add(self, record: ImpressionRecord | ClickRecord) -> Joined | None:
        key = record.impression_id
        if isinstance(record, ImpressionRecord):
            click = self.clicks.pop(key, None)
            if click is None:
                self.impressions[key] = record
                return None
            return Joined(record, click)
        imp = self.impressions.pop(key, None)
        if imp is None:
            self.clicks[key] = record
            return None
        return Joined(imp, record)

    def expire(self, watermark: float) -> int:
        """Drop partners older than ``watermark - window_s``; returns how many were dropped."""
        limit = watermark - self.window_s
        old = [k for k, r in self.impressions.items() if r.time < limit] + [k for k, r in self.clicks.items() if r.time < limit]
        for k in old:
            self.impressions.pop(k, None)
            self.clicks.pop(k, None)
        self.expired += len(old)
        return len(old)

    def state(self) -> dict:
        return {"impressions": [r.model_dump(mode="json") for r in self.impressions.values()],
                "clicks": [r.model_dump(mode="json") for r in self.clicks.values()], "expired": self.expired}

    @classmethod
    def from_state(cls, window_s: float, state: dict) -> ClickJoiner:
        joiner = cls(window_s)
        for r in state.get("impressions", []):
            rec = ImpressionRecord.model_validate({**r, "history": tuple(r["history"]), "candidates": tuple(r["candidates"])})
            joiner.impressions[rec.impression_id] = rec
        for r in state.get("clicks", []):
            rec = ClickRecord.model_validate({**r, "clicked": tuple(r["clicked"]), "shown": tuple(r["shown"])})
            joiner.clicks[rec.impression_id] = rec
        joiner.expired = state.get("expired", 0)
        return joiner


def click_rows(joined: Sequence[Joined], negatives: int, history_len: int, rng: np.random.Generator) -> list[tuple[list[str], list[str]]]:
    """Training rows ``(history, [click, neg1..negK])`` of joined impressions.

    Each click gets ``negatives`` non-clicked candidates of its impression, drawn without
    replacement; clicks without enough negatives, and users without history, give no row.
    """
    rows = []
    for j in joined:
        clicked = set(j.click.clicked)
        pool = [n for n in j.click.shown if n not in clicked]
        hist = list(j.impression.history[-history_len:])
        if len(pool) < negatives or not hist:
            continue
        for p in j.click.clicked:
            pick = rng.permutation(len(pool))[:negatives]  # without replacement; faster than choice
            rows.append((hist, [p, *(pool[k] for k in pick)]))
    return rows


class UserTowerLearner:
    """Fine-tune the user towers and the gates on joined impressions.

    The news towers are not trained here, so each news item's ``(r_t, r_e)`` is computed once
    (eval mode, as serving sees it) and cached by store sequence number; call
    :meth:`news_changed` after loading a new entity tower.

    Args:
        model: the model; only ``user``, ``user_gate`` and ``cand_gate`` parameters change.
        features: news inputs by id.
        cfg: step sizes.
        seed: seeds the negative sampling.
    """

    def __init__(self, model: IP2Model, features: FeatureSource, cfg: OnlineConfig, seed: int = 0) -> None:
        self.model, self.features, self.cfg = model, features, cfg
        self.rng = np.random.default_rng(seed)
        owned = [m for m in (model.user, model.user_gate, model.cand_gate) if m is not None]
        self.optimizer = torch.optim.AdamW([p for m in owned for p in m.parameters()], lr=cfg.user_lr, weight_decay=0.0)
        self.steps = 0
        self.last_loss: float | None = None
        self._vectors: dict[int, tuple[torch.Tensor | None, torch.Tensor | None]] = {}  # seq -> (r_t, r_e) [D]

    def news_changed(self) -> None:
        """Forget the cached news vectors (the entity tower or the vocabulary changed)."""
        self._vectors.clear()

    @torch.no_grad()
    def _news(self, seqs: list[int]) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """``(r_t, r_e)`` [n, D] of store news ``seqs``; only uncached ones are fetched and encoded."""
        missing = sorted({s for s in seqs if s not in self._vectors})
        if missing:
            was = self.model.news.training
            self.model.news.eval()
            r_t, r_e = news_vectors(self.model, self.features.batch(missing))
            self.model.news.train(was)
            for i, s in enumerate(missing):
                self._vectors[s] = (r_t[i] if r_t is not None else None, r_e[i] if r_e is not None else None)
        rows = [self._vectors[s] for s in seqs]
        return tuple(torch.stack([r[k] for r in rows]) if rows[0][k] is not None else None for k in (0, 1))

    def _loss(self, rows) -> torch.Tensor | None:
        if not rows:
            return None
        ids = sorted({n for hist, cands in rows for n in (*hist, *cands)})
        seqs = self.features.seqs(ids)
        known = {n: i for i, (n, s) in enumerate(zip(ids, seqs)) if s >= 0}
        rows = [(h, c) for h, c in rows if all(n in known for n in c) and any(n in known for n in h)]
        if not rows:
            return None
        r_t, r_e = self._news([int(seqs[known[n]]) for n in known])
        pos = {n: i for i, n in enumerate(known)}
        L = self.cfg.history_len
        hist_pos = torch.full((len(rows), L), -1, dtype=torch.long)
        for r, (hist, _) in enumerate(rows):
            h = [pos[n] for n in hist if n in pos][-L:]
            if h:
                hist_pos[r, L - len(h):] = torch.tensor(h)
        cand_pos = torch.tensor([[pos[n] for n in c] for _, c in rows])
        mask = hist_pos >= 0

        def take(v, p, m=None):
            if v is None:
                return None
            out = v[p.clamp_min(0)]
            return out * m.unsqueeze(-1) if m is not None else out

        scores = self.model(take(r_t, cand_pos), take(r_e, cand_pos), take(r_t, hist_pos, mask), take(r_e, hist_pos, mask), mask)
        return click_loss(scores)

    def learn_many(self, joined: Sequence[Joined]) -> None:
        """One optimizer step per ``user_batch`` samples built from ``joined``."""
        rows = click_rows(joined, self.cfg.negatives, self.cfg.history_len, self.rng)
        self.model.train()
        for lo in range(0, len(rows), self.cfg.user_batch):
            loss = self._loss(rows[lo : lo + self.cfg.user_batch])
            if loss is None:
                continue
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            self.steps += 1
            self.last_loss = float(loss.detach())
        self.model.eval()

    @torch.no_grad()
    def evaluate_loss(self, joined: Sequence[Joined], seed: int = 1234) -> float | None:
        """Mean click loss on ``joined`` with fixed negatives (a held-out slice)."""
        self.model.eval()
        rows = click_rows(joined, self.cfg.negatives, self.cfg.history_len, np.random.default_rng(seed))
        losses = [self._loss(rows[lo : lo + 256]) for lo in range(0, len(rows), 256)]
        losses = [float(x) for x in losses if x is not None]
        return float(np.mean(losses)) if losses else None
