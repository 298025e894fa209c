"""Synthetic MIND: a seeded generator that writes the exact MIND files.

The world it simulates has the phenomena ip2-stream exists for:

- entities (Wikidata-like ``Q`` ids with English labels) whose popularity follows a random
  walk over the days, and brand-new entities born every day with a "breaking news" burst;
- news whose readable titles are built from real words and name their entities, with
  entity-specific keywords so a title says something about its entities;
- users with sparse topic interests that drift day by day, a few favourite entities, and
  a chance to become a fan of a new entity in a topic they follow (interest that fades);
- clicks drawn from a known logistic model over topic interest, entity affinity, trending
  popularity and freshness, so the true click probability of every candidate is written to
  ``truth.tsv`` and the oracle AUC can be reported next to every model's.

Day 0 only builds click histories; impressions run over ``days`` days, the last
``dev_days`` of which form the dev split. Output layout (like MINDsmall)::

    OUT/train/{news.tsv, behaviors.tsv, entity_embedding.vec, relation_embedding.vec, truth.tsv}
    OUT/dev/{...same...}
    OUT/entities.tsv      # every entity: id, label, type, category, birth time, known at start
    OUT/synth.json        # the configuration and summary counts

Example:
    >>> from ip2_stream.data.synth import SynthConfig, generate
    >>> summary = generate(SynthConfig.from_preset("tiny", seed=1), "/tmp/mind-tiny")  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from tqdm.auto import tqdm

from ip2_stream.data import words
from ip2_stream.data.mind import format_mind_time

logger = logging.getLogger(__name__)

DAY = 86400
BLOCK = 2 * 3600  # popularity and candidate pools are piecewise constant over 2-hour blocks
ENTITY_DIM = 100
MAX_ENTS_PER_NEWS = 3
PresetName = Literal["tiny", "small", "mind-small"]


class SynthConfig(BaseModel):
    """Size and behaviour of a synthetic MIND data set. Start from :meth:`from_preset`."""

    model_config = ConfigDict(extra="forbid")

    preset: PresetName | None = None
    seed: int = 0
    users: int = Field(3000, ge=10)
    news: int = Field(5000, ge=50)
    impressions: int = Field(15000, ge=10)
    days: int = Field(6, ge=2, description="impression days; day 0 before them builds histories")
    dev_days: int = Field(1, ge=1)
    initial_entities: int = Field(1200, ge=10)
    new_entities_per_day: int = Field(60, ge=0)
    candidates_mean: float = Field(30.0, ge=2)
    candidates_max: int = Field(300, ge=2)
    history_mean: float = Field(20.0, ge=0)
    history_max: int = Field(150, ge=1)
    empty_history_rate: float = Field(0.03, ge=0, le=1)
    target_ctr: float = Field(0.04, gt=0, lt=1)
    topic_weight: float = 0.8
    entity_weight: float = 3.5
    trend_weight: float = 0.35
    freshness_per_day: float = 0.4
    interest_drift_per_day: float = Field(0.15, ge=0, le=1)
    favourites_mean: float = Field(10.0, ge=0, description="favourite entities per user (2 + Poisson)")
    fan_rate: float = Field(0.03, ge=0, le=1, description="share of users following a topic who become fans of a new entity")
    breaking_burst: float = Field(3.0, ge=0, description="popularity multiplier of a new entity at birth")
    fan_half_life_days: float = 2.0
    start_date: str = "2019-11-09"

    @classmethod
    def from_preset(cls, name: PresetName, seed: int = 0, **overrides) -> SynthConfig:
        """A named preset with optional field overrides (``users=..., news=...``)."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
        values = {**PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}}
        return cls(preset=name, seed=seed, **values)


PRESETS: dict[str, dict] = {
    "tiny": dict(
        users=200, news=700, impressions=1500, days=4, initial_entities=150, new_entities_per_day=12,
        candidates_mean=14, candidates_max=60, history_mean=12, history_max=80,
    ),
    "small": dict(
        users=3000, news=6000, impressions=15000, days=6, initial_entities=1200, new_entities_per_day=60,
        candidates_mean=30, candidates_max=250, history_mean=22, history_max=150,
    ),
    "mind-small": dict(
        users=50000, news=50000, impressions=230000, days=7, initial_entities=8000, new_entities_per_day=400,
        candidates_mean=35, candidates_max=300, history_mean=25, history_max=150,
    ),
}


@dataclass
class _Entities:
    qid: list[str]
    label: list[str]
    etype: list[str]
    category: np.ndarray  # [E] category index
    subcategory: list[str]
    keywords: list[tuple[str, ...]]
    birth: np.ndarray  # [E] seconds from start (0 for the initial set)
    log_pop: np.ndarray  # [B, E] log popularity per 2-hour block (-inf before birth)


@dataclass
class _News:
    nid: list[str]
    time: np.ndarray  # [N] publish time, seconds
    category: np.ndarray  # [N]
    subcategory: list[str]
    ents: np.ndarray  # [N, MAX_ENTS_PER_NEWS] entity index, -1 padded
    title: list[str]
    abstract: list[str]
    title_json: list[str]
    abstract_json: list[str]


class _Generator:
    def __init__(self, cfg: SynthConfig) -> None:
        self.cfg = cfg
        self.rng = np.random.default_rng(cfg.seed)
        self.cats = list(words.TOPICS)
        self.K = len(self.cats)
        # category shares roughly like MIND's (news and sports dominate)
        share = np.array([3.0, 2.5, 1.2, 1.2, 1.0, 1.0, 0.8, 0.8, 0.7, 0.5, 0.6, 0.7, 0.7])
        self.cat_share = share / share.sum()
        self.span = (cfg.days + 1) * DAY
        self.blocks = self.span // BLOCK
        self.start = int(datetime.fromisoformat(cfg.start_date).replace(tzinfo=timezone.utc).timestamp())

    # ------------------------------------------------------------------ entities
    def _entity_name(self, etype: str, cat: str, used: set[str]) -> str:
        rng = self.rng
        for _ in range(50):
            if etype == "P":
                name = f"{rng.choice(words.FIRST_NAMES)} {rng.choice(words.LAST_NAMES)}"
            elif etype == "O":
                name = f"{rng.choice(words.PLACES)} {rng.choice(words.ORG_SUFFIXES[cat])}"
            elif etype == "E":
                name = f"{rng.choice(words.PLACES)} {rng.choice(words.EVENT_WORDS)}"
            else:
                name = str(rng.choice(words.PLACES))
            if name not in used:
                used.add(name)
                return name
        name = f"{name} {len(used)}"  # the word lists ran out of fresh combinations
        used.add(name)
        return name

    def make_entities(self) -> _Entities:
        cfg, rng = self.cfg, self.rng
        n_new = cfg.new_entities_per_day * cfg.days
        E = cfg.initial_entities + n_new
        birth = np.zeros(E, dtype=np.int64)
        # new entities are born during impression days 1..days, uniformly within each day
        new_days = np.repeat(np.arange(1, cfg.days + 1), cfg.new_entities_per_day)
        birth[cfg.initial_entities :] = new_days * DAY + rng.integers(0, DAY, size=n_new)
        category = rng.choice(self.K, size=E, p=self.cat_share)
        etypes = rng.choice(["P", "O", "G", "E"], size=E, p=[0.5, 0.3, 0.1, 0.1])
        qnums = rng.choice(np.arange(1000, 1000 + 60 * E), size=E, replace=False)
        used: set[str] = set()
        labels, subcats, keywords = [], [], []
        for i in range(E):
            cat = self.cats[category[i]]
            # the single-place type only for the initial set: a brand-new entity needs a new name
            etype = "P" if etypes[i] == "G" and i >= cfg.initial_entities else str(etypes[i])
            etypes[i] = etype
            labels.append(self._entity_name(etype, cat, used))
            subs, nouns = words.TOPICS[cat]
            subcats.append(str(rng.choice(subs)))
            keywords.append(tuple(str(w) for w in rng.choice(nouns, size=3, replace=False)))
        # popularity: lognormal base; the initial set walks randomly day to day, new entities
        # burst at birth and decay towards a lower plateau
        base = rng.normal(0.0, 1.0, size=E)
        block_day = (np.arange(self.blocks) * BLOCK) // DAY
        walk = np.cumsum(rng.normal(0.0, 0.5, size=(cfg.days + 1, E)), axis=0)
        log_pop = base[None, :] + walk[block_day]
        t_block = (np.arange(self.blocks) * BLOCK)[:, None].astype(np.float64)
        age_days = (t_block - birth[None, :]) / DAY
        is_new = np.arange(E) >= cfg.initial_entities
        burst = np.log1p(cfg.breaking_burst * np.exp(-np.clip(age_days, 0, None) / 1.0))
        log_pop = np.where(is_new[None, :], base[None, :] + burst, log_pop)
        log_pop = np.where(age_days < 0, -np.inf, log_pop).astype(np.float32)
        return _Entities(
            qid=[f"Q{q}" for q in qnums], label=labels, etype=[str(t) for t in etypes], category=category,
            subcategory=subcats, keywords=keywords, birth=birth, log_pop=log_pop,
        )

    # ------------------------------------------------------------------ news
    def make_news(self, ent: _Entities) -> _News:
        cfg, rng = self.cfg, self.rng
        E = len(ent.qid)
        new_ids = np.arange(cfg.initial_entities, E)
        # every new entity breaks with 1-3 news items within hours of its birth
        n_break = rng.integers(1, 4, size=len(new_ids))
        break_ent = np.repeat(new_ids, n_break)
        break_time = ent.birth[break_ent] + rng.integers(0, 6 * 3600, size=len(break_ent))
        n_rest = max(cfg.news - len(break_ent), cfg.news // 2)
        rest_time = np.sort(rng.integers(0, self.span, size=n_rest))
        times = np.concatenate([break_time, rest_time])
        primary = np.concatenate([break_ent, np.full(n_rest, -1)])
        order = np.argsort(times, kind="stable")
        times, primary = np.clip(times[order], 0, self.span - 1), primary[order]
        N = len(times)
        ents = np.full((N, MAX_ENTS_PER_NEWS), -1, dtype=np.int64)
        ents[:, 0] = primary
        blocks = times // BLOCK
        no_entity = (primary < 0) & (rng.random(N) < 0.08)
        # primary entity of the remaining news: by popularity in its block
        for b in np.unique(blocks):
            rows = np.flatnonzero((blocks == b) & (primary < 0) & ~no_entity)
            if not len(rows):
                continue
            w = np.exp(ent.log_pop[b].astype(np.float64))
            ents[rows, 0] = rng.choice(E, size=len(rows), p=w / w.sum())
        category = np.where(ents[:, 0] >= 0, ent.category[np.maximum(ents[:, 0], 0)], rng.choice(self.K, size=N, p=self.cat_share))
        off_topic = rng.random(N) < 0.15
        category = np.where(off_topic, rng.choice(self.K, size=N, p=self.cat_share), category)
        # secondary entities: alive, from the same category, by popularity
        for slot, prob in ((1, 0.45), (2, 0.15)):
            want = (ents[:, 0] >= 0) & (rng.random(N) < prob) & ((slot == 1) | (ents[:, 1] >= 0))
            for k in range(self.K):
                rows = np.flatnonzero(want & (category == k))
                if not len(rows):
                    continue
                cand = np.flatnonzero(ent.category == k)
                for r in rows:
                    w = np.exp(ent.log_pop[blocks[r], cand].astype(np.float64))
                    if w.sum() <= 0:
                        continue
                    pick = cand[rng.choice(len(cand), p=w / w.sum())]
                    if pick not in ents[r, :slot]:
                        ents[r, slot] = pick
        # keep slots dense after a skipped duplicate (slot 2 set while slot 1 empty cannot happen)
        subcats: list[str] = []
        titles, abstracts, t_json, a_json = [], [], [], []
        for i in range(N):
            cat = self.cats[category[i]]
            e_row = [int(e) for e in ents[i] if e >= 0]
            if e_row and not off_topic[i] and rng.random() < 0.7:
                subcats.append(ent.subcategory[e_row[0]])
            else:
                subcats.append(str(rng.choice(words.TOPICS[cat][0])))
            title, t_ents = self._title(cat, e_row, ent)
            abstract, a_ents = self._abstract(cat, e_row, ent)
            titles.append(title)
            abstracts.append(abstract)
            t_json.append(json.dumps(t_ents))
            a_json.append(json.dumps(a_ents))
        nums = rng.choice(np.arange(10000, 10000 + 20 * N), size=N, replace=False)
        return _News(
            nid=[f"N{n}" for n in nums], time=times, category=category, subcategory=subcats, ents=ents,
            title=titles, abstract=abstracts, title_json=t_json, abstract_json=a_json,
        )

    def _noun(self, cat: str, e_row: list[int], ent: _Entities) -> str:
        if e_row and self.rng.random() < 0.75:
            return str(self.rng.choice(ent.keywords[e_row[0]]))
        return str(self.rng.choice(words.TOPICS[cat][1]))

    def _title(self, cat: str, e_row: list[int], ent: _Entities) -> tuple[str, list[dict]]:
        rng = self.rng
        adj, verb, past = rng.choice(words.ADJECTIVES), rng.choice(words.VERBS_PRESENT), rng.choice(words.VERBS_PAST)
        noun, noun2 = self._noun(cat, e_row, ent), str(rng.choice(words.TOPICS[cat][1]))
        conn = rng.choice(words.CONNECTORS)
        names = [ent.label[e] for e in e_row]
        if not names:
            templates = [
                f"The {adj} {noun} that {past} the {noun2}",
                f"{adj} {noun} {verb} {noun2} {conn} {rng.choice(words.ADJECTIVES)} week",
                f"{rng.choice(words.OPENERS)} the {noun} {past} {conn} the {noun2}",
            ]
        else:
            a = names[0]
            templates = [
                f"{a} {verb} {adj} {noun}",
                f"{a} {verb} {noun} {conn} {adj} {noun2}",
                f"{rng.choice(words.OPENERS)} {a} {past} the {adj} {noun}",
                f"{a}: the {adj} {noun} {conn} the {noun2}",
                f"{adj} {noun} {verb} {a}",
            ]
            if len(names) > 1:
                templates += [f"{a} and {names[1]} {verb} {adj} {noun}", f"{a} {verb} {names[1]} {conn} {noun}"]
            if len(names) > 2:
                templates.append(f"{a}, {names[1]} and {names[2]} {past} the {noun}")
        title = str(rng.choice(templates))
        title = title[0].upper() + title[1:]
        return title, self._mentions(title, e_row, ent)

    def _abstract(self, cat: str, e_row: list[int], ent: _Entities) -> tuple[str, list[dict]]:
        rng = self.rng
        noun = self._noun(cat, e_row, ent)
        subject = ent.label[e_row[0]] if e_row else f"The {rng.choice(words.TOPICS[cat][1])}"
        text = f"{subject} {rng.choice(words.VERBS_PAST)} a {rng.choice(words.ADJECTIVES)} {noun} this week, officials said."
        return text, self._mentions(text, e_row[:1], ent)

    @staticmethod
    def _mentions(text: str, e_row: list[int], ent: _Entities) -> list[dict]:
        out = []
        for e in e_row:
            label = ent.label[e]
            offsets, start = [], text.find(label)
            while start >= 0:
                offsets.append(start)
                start = text.find(label, start + 1)
            if offsets:
                out.append({
                    "Label": label, "Type": ent.etype[e], "WikidataId": ent.qid[e], "Confidence": 1.0,
                    "OccurrenceOffsets": offsets, "SurfaceForms": [label],
                })
        return out

    # ------------------------------------------------------------------ users
    def make_users(self, ent: _Entities):
        """Daily topic interests [D, U, K] and entity affinity links sorted by key."""
        cfg, rng = self.cfg, self.rng
        U, K, E = cfg.users, self.K, len(ent.qid)
        alpha = 0.35 * self.cat_share * K
        interest = np.empty((cfg.days + 1, U, K), dtype=np.float32)
        interest[0] = rng.dirichlet(alpha, size=U)
        for d in range(1, cfg.days + 1):
            fresh = rng.dirichlet(alpha, size=U)
            r = cfg.interest_drift_per_day
            interest[d] = (1 - r) * interest[d - 1] + r * fresh
        # favourite entities among the initial set: in the user's topics, by base popularity
        n_fav = 2 + rng.poisson(max(cfg.favourites_mean - 2, 0), size=U)
        init = np.arange(cfg.initial_entities)
        base_pop = np.exp(ent.log_pop[0, init].astype(np.float64))
        fav_u, fav_e = [], []
        for u in range(U):
            w = interest[0, u, ent.category[init]] * base_pop
            picks = rng.choice(init, size=min(n_fav[u], len(init)), replace=False, p=w / w.sum())
            fav_u.append(np.full(len(picks), u))
            fav_e.append(picks)
        fav_u, fav_e = np.concatenate(fav_u), np.concatenate(fav_e)
        fav_w = rng.uniform(0.6, 1.4, size=len(fav_u))
        fav_since = np.full(len(fav_u), -1, dtype=np.int64)
        # fans of new entities: users following the entity's topic at its birth day
        fan_u, fan_e = [], []
        for e in range(cfg.initial_entities, E):
            d = int(ent.birth[e] // DAY)
            p = np.minimum(cfg.fan_rate * K * interest[d, :, ent.category[e]], 0.9)
            users = np.flatnonzero(rng.random(U) < p)
            fan_u.append(users)
            fan_e.append(np.full(len(users), e))
        fan_u = np.concatenate(fan_u) if fan_u else np.zeros(0, dtype=np.int64)
        fan_e = np.concatenate(fan_e) if fan_e else np.zeros(0, dtype=np.int64)
        fan_w = rng.uniform(0.8, 1.6, size=len(fan_u))
        keys = np.concatenate([fav_u * E + fav_e, fan_u * E + fan_e]).astype(np.int64)
        weight = np.concatenate([fav_w, fan_w]).astype(np.float32)
        since = np.concatenate([fav_since, ent.birth[fan_e]]).astype(np.int64)
        keys, first = np.unique(keys, return_index=True)
        return interest, keys, weight[first], since[first]

    def affinity(self, users: np.ndarray, ents: np.ndarray, t: np.ndarray, links) -> np.ndarray:
        """Summed entity affinity of users for news entity rows at times t. Shapes [R], [R, S], [R]."""
        keys, weight, since = links
        E = self.n_entities
        out = np.zeros(len(users), dtype=np.float32)
        if not len(keys):
            return out
        half_life = self.cfg.fan_half_life_days * DAY
        for s in range(ents.shape[1]):
            e = ents[:, s]
            q = users.astype(np.int64) * E + np.maximum(e, 0)
            pos = np.minimum(np.searchsorted(keys, q), len(keys) - 1)
            hit = (keys[pos] == q) & (e >= 0) & (since[pos] <= t)
            decay = np.where(since[pos] < 0, 1.0, np.exp2(-(t - since[pos]) / half_life))
            out += np.where(hit, weight[pos] * decay, 0.0).astype(np.float32)
        return out

    # ------------------------------------------------------------------ impressions
    def run(self):
        cfg, rng = self.cfg, self.rng
        ent = self.make_entities()
        self.n_entities = len(ent.qid)
        news = self.make_news(ent)
        interest, *links = self.make_users(ent)
        links = tuple(links)
        U = cfg.users
        # trending: log popularity of the news' primary entity, standardised per block
        lp = ent.log_pop.astype(np.float64)
        finite = np.isfinite(lp)
        mu = np.where(finite, lp, 0).sum(1) / np.maximum(finite.sum(1), 1)
        sd = np.sqrt(np.where(finite, (lp - mu[:, None]) ** 2, 0).sum(1) / np.maximum(finite.sum(1), 1)) + 1e-6
        trend = np.where(finite, (lp - mu[:, None]) / sd[:, None], -3.0).astype(np.float32)

        def news_logit(u: np.ndarray, n: np.ndarray, t: np.ndarray) -> np.ndarray:
            d = np.minimum(t // DAY, cfg.days)
            blk = np.minimum(t // BLOCK, self.blocks - 1)
            topic = np.log(self.K * interest[d, u, news.category[n]] + 0.05)
            aff = self.affinity(u, news.ents[n], t, links)
            prim = news.ents[n, 0]
            tr = np.where(prim >= 0, trend[blk, np.maximum(prim, 0)], 0.0)
            age = np.maximum(t - news.time[n], 0) / DAY
            return (cfg.topic_weight * topic + cfg.entity_weight * aff + cfg.trend_weight * tr
                    - cfg.freshness_per_day * age).astype(np.float32)

        # --- impressions: users with skewed activity, diurnal times over days 1..days
        activity = rng.lognormal(0.0, 1.0, size=U)
        imp_user = rng.choice(U, size=cfg.impressions, p=activity / activity.sum())
        hour_w = 1.0 + 0.8 * np.sin((np.arange(24) - 3) / 24 * 2 * math.pi) ** 2
        hours = rng.choice(24, size=cfg.impressions, p=hour_w / hour_w.sum())
        days = rng.integers(1, cfg.days + 1, size=cfg.impressions)
        imp_time = np.sort(days * DAY + hours * 3600 + rng.integers(0, 3600, size=cfg.impressions))
        # candidates per impression: long-tailed (lognormal), at least 2
        sigma = 0.75
        k = np.exp(rng.normal(math.log(cfg.candidates_mean) - sigma**2 / 2, sigma, size=cfg.impressions))
        k = np.clip(np.round(k), 2, cfg.candidates_max).astype(np.int64)

        # --- candidate pools per block: news of the last 48 hours, by trend and freshness
        cand_lists: list[np.ndarray] = []
        imp_block = imp_time // BLOCK
        for i in tqdm(range(cfg.impressions), desc="impressions", unit="imp", disable=cfg.impressions < 20000, mininterval=1.0):
            if i == 0 or imp_block[i] != imp_block[i - 1]:
                b = imp_block[i]
                t0 = b * BLOCK
                pool = np.flatnonzero((news.time <= t0) & (news.time > t0 - 2 * DAY))
                prim = news.ents[pool, 0]
                w = np.exp(np.where(prim >= 0, trend[b, np.maximum(prim, 0)], 0.0) * 0.8
                           - (t0 - news.time[pool]) / DAY)
                cdf = np.cumsum(w)
                cdf /= cdf[-1]
            want = min(int(k[i]), len(pool))
            picked = np.zeros(0, dtype=np.int64)
            draws = 2 * want
            while len(picked) < want:
                idx = np.minimum(np.searchsorted(cdf, rng.random(draws)), len(pool) - 1)
                idx = np.concatenate([picked, idx])
                _, first = np.unique(idx, return_index=True)
                picked = idx[np.sort(first)][:want]
                draws *= 2
            cand_lists.append(pool[picked])
        cand_ptr = np.zeros(cfg.impressions + 1, dtype=np.int64)
        cand_ptr[1:] = np.cumsum([len(c) for c in cand_lists])
        cand = np.concatenate(cand_lists)
        row_imp = np.repeat(np.arange(cfg.impressions), np.diff(cand_ptr))
        logits = news_logit(imp_user[row_imp], cand, imp_time[row_imp])
        bias = self._calibrate(logits, cand_ptr)
        prob = 1.0 / (1.0 + np.exp(-(logits + bias)))
        clicks = rng.random(len(prob)) < prob
        # every impression has at least one click: where none fell, one by probability
        n_clicks = np.add.reduceat(clicks.astype(np.int64), cand_ptr[:-1])
        for i in np.flatnonzero(n_clicks == 0):
            lo, hi = cand_ptr[i], cand_ptr[i + 1]
            p = prob[lo:hi] / prob[lo:hi].sum()
            clicks[lo + rng.choice(hi - lo, p=p)] = True
        # the true marginal click probability: the Bernoulli draw, or the forced click when none fell
        none = np.exp(np.add.reduceat(np.log1p(-np.minimum(prob, 1 - 1e-12)), cand_ptr[:-1]))
        share = prob / np.repeat(np.add.reduceat(prob, cand_ptr[:-1]), np.diff(cand_ptr))
        prob = prob + np.repeat(none, np.diff(cand_ptr)) * share

        # --- initial histories: clicks on day-0 news by the same click model
        day0 = np.flatnonzero(news.time < DAY)
        hist_len = np.minimum(rng.poisson(cfg.history_mean, size=U) * rng.lognormal(0, 0.6, size=U), cfg.history_max)
        hist_len = np.where(rng.random(U) < cfg.empty_history_rate, 0, np.round(hist_len)).astype(np.int64)
        hist_len = np.minimum(hist_len, len(day0))
        initial = self._initial_histories(news, day0, hist_len, interest[0], links, trend)
        return ent, news, dict(
            imp_user=imp_user, imp_time=imp_time, cand_ptr=cand_ptr, cand=cand, prob=prob,
            clicks=clicks, initial=initial,
        )

    def _initial_histories(self, news: _News, day0: np.ndarray, hist_len: np.ndarray, interest0: np.ndarray,
                           links, trend: np.ndarray) -> list[np.ndarray]:
        """Clicks before the log starts, on day-0 news, by the click model at the end of day 0.

        No new entity is born on day 0, so only favourite links count and the entity affinity
        of a chunk of users fits a dense [users, entities] matrix.
        """
        cfg, rng, E = self.cfg, self.rng, self.n_entities
        keys, weight, since = links
        t = DAY - 1
        prim = news.ents[day0, 0]
        blk = t // BLOCK
        per_news = (cfg.trend_weight * np.where(prim >= 0, trend[blk, np.maximum(prim, 0)], 0.0)
                    - cfg.freshness_per_day * (t - news.time[day0]) / DAY).astype(np.float32)
        ents0 = news.ents[day0]
        out: list[np.ndarray] = []
        chunk = max(1, 4_000_000 // max(len(day0), 1))
        for lo in range(0, cfg.users, chunk):
            hi = min(cfg.users, lo + chunk)
            dense = np.zeros((hi - lo, E + 1), dtype=np.float32)  # column E: padding
            a, b = np.searchsorted(keys, [lo * E, hi * E])
            fav = since[a:b] < 0
            dense[keys[a:b][fav] // E - lo, keys[a:b][fav] % E] = weight[a:b][fav]
            aff = sum(dense[:, np.where(ents0[:, s] >= 0, ents0[:, s], E)] for s in range(ents0.shape[1]))
            topic = np.log(self.K * interest0[lo:hi][:, news.category[day0]] + 0.05)
            score = cfg.topic_weight * topic + cfg.entity_weight * aff + per_news[None, :]
            score += rng.gumbel(size=score.shape).astype(np.float32)
            kmax = int(hist_len[lo:hi].max(initial=0))
            top = np.argpartition(-score, kmax - 1, axis=1)[:, :kmax] if 0 < kmax < len(day0) else np.tile(np.arange(len(day0)), (hi - lo, 1))
            for j in range(hi - lo):
                row = top[j]
                row = row[np.argsort(-score[j, row])][: hist_len[lo + j]]
                chosen = day0[row]
                out.append(chosen[np.argsort(news.time[chosen], kind="stable")])
        return out

    def _calibrate(self, logits: np.ndarray, cand_ptr: np.ndarray) -> float:
        """Bias making the expected CTR (with the forced click) as close to the target as it can be."""
        starts = cand_ptr[:-1]
        total = len(logits)

        def ctr(b: float) -> float:
            p = 1.0 / (1.0 + np.exp(-(logits.astype(np.float64) + b)))
            none = np.exp(np.add.reduceat(np.log1p(-np.minimum(p, 1 - 1e-12)), starts))
            return (p.sum() + none.sum()) / total

        lo, hi = -30.0, 10.0
        for _ in range(40):
            mid = (lo + hi) / 2
            if ctr(mid) > self.cfg.target_ctr:
                hi = mid
            else:
                lo = mid
        achieved = ctr(lo)
        if achieved > self.cfg.target_ctr * 1.25:
            logger.info(
                "target CTR %.3f is below what >=1 click per impression allows with %.1f candidates on "
                "average; expected CTR is %.3f", self.cfg.target_ctr, self.cfg.candidates_mean, achieved,
            )
        return lo


# ---------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------
def _write_split(
    out: Path, g: _Generator, ent: _Entities, news: _News, imp: dict, rows: np.ndarray, histories: list[np.ndarray],
    known_vectors: np.ndarray,
) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    cand_ptr, cand, clicks, prob = imp["cand_ptr"], imp["cand"], imp["clicks"], imp["prob"]
    used = np.zeros(len(news.nid), dtype=bool)
    with open(out / "behaviors.tsv", "w", encoding="utf-8") as fb, open(out / "truth.tsv", "w", encoding="utf-8") as ft:
        for i in rows:
            lo, hi = cand_ptr[i], cand_ptr[i + 1]
            c, hist = cand[lo:hi], histories[i]
            used[c] = True
            used[hist] = True
            imp_id = int(i) + 1
            when = format_mind_time(g.start + int(imp["imp_time"][i]))
            hist_s = " ".join(news.nid[n] for n in hist)
            cand_s = " ".join(f"{news.nid[n]}-{int(y)}" for n, y in zip(c, clicks[lo:hi]))
            fb.write(f"{imp_id}\tU{imp['imp_user'][i] + 1}\t{when}\t{hist_s}\t{cand_s}\n")
            ft.write(f"{imp_id}\t" + " ".join(f"{p:.6g}" for p in prob[lo:hi]) + "\n")
    split_news = np.flatnonzero(used)
    with open(out / "news.tsv", "w", encoding="utf-8") as fn:
        for n in split_news:
            cat = g.cats[news.category[n]]
            fn.write("\t".join([
                news.nid[n], cat, news.subcategory[n], news.title[n], news.abstract[n],
                f"https://news.example/ip2/{news.nid[n]}.html", news.title_json[n], news.abstract_json[n],
            ]) + "\n")
    # entity vectors only for entities known at the start (a static KG lags breaking news)
    mentioned = np.unique(news.ents[split_news].ravel())
    mentioned = mentioned[(mentioned >= 0) & (mentioned < g.cfg.initial_entities)]
    with open(out / "entity_embedding.vec", "w", encoding="utf-8") as fe:
        for e in mentioned:
            fe.write(ent.qid[e] + "\t" + "\t".join(f"{x:.6f}" for x in known_vectors[e]) + "\t\n")
    rel = np.random.default_rng(g.cfg.seed + 1).normal(0, 0.1, size=(12, ENTITY_DIM))
    with open(out / "relation_embedding.vec", "w", encoding="utf-8") as fr:
        for j, vec in enumerate(rel):
            fr.write(f"P{31 + j * 7}\t" + "\t".join(f"{x:.6f}" for x in vec) + "\t\n")
    return {"impressions": int(len(rows)), "news": int(len(split_news))}


def generate(cfg: SynthConfig, out: Path | str) -> dict:
    """Generate a synthetic MIND data set into ``out`` and return a summary.

    Args:
        cfg: sizes and behaviour (see :meth:`SynthConfig.from_preset`).
        out: output folder; ``train/`` and ``dev/`` are created in it.
    """
    out = Path(out)
    g = _Generator(cfg)
    ent, news, imp = g.run()
    n_imp = cfg.impressions
    # histories grow with the user's own earlier clicks (chronological, most recent last)
    histories: list[np.ndarray] = []
    clicked_so_far: dict[int, list[int]] = {}
    cand_ptr, cand, clicks = imp["cand_ptr"], imp["cand"], imp["clicks"]
    for i in range(n_imp):
        u = int(imp["imp_user"][i])
        extra = clicked_so_far.setdefault(u, [])
        hist = np.concatenate([imp["initial"][u], np.asarray(extra, dtype=np.int64)])[-cfg.history_max :]
        histories.append(hist.astype(np.int64))
        lo, hi = cand_ptr[i], cand_ptr[i + 1]
        extra.extend(int(n) for n in cand[lo:hi][clicks[lo:hi]])
    # TransE-like vectors for the initial entities: a category direction plus noise
    vrng = np.random.default_rng(cfg.seed + 2)
    cat_dir = vrng.normal(0, 1, size=(g.K, ENTITY_DIM))
    vectors = 0.6 * cat_dir[ent.category] + 0.8 * vrng.normal(0, 1, size=(len(ent.qid), ENTITY_DIM))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True) * 0.5).astype(np.float32)

    dev_start = (cfg.days - cfg.dev_days + 1) * DAY
    is_dev = imp["imp_time"] >= dev_start
    summary = {"config": cfg.model_dump(), "splits": {}}
    for role, rows in (("train", np.flatnonzero(~is_dev)), ("dev", np.flatnonzero(is_dev))):
        summary["splits"][role] = _write_split(out / role, g, ent, news, imp, rows, histories, vectors)
    with open(out / "entities.tsv", "w", encoding="utf-8") as fe:
        fe.write("entity_id\tlabel\ttype\tcategory\tbirth_time\tknown_at_start\n")
        for e in range(len(ent.qid)):
            known = int(e < cfg.initial_entities)
            when = format_mind_time(g.start + int(ent.birth[e]))
            fe.write(f"{ent.qid[e]}\t{ent.label[e]}\t{ent.etype[e]}\t{g.cats[ent.category[e]]}\t{when}\t{known}\n")
    summary.update(
        entities=len(ent.qid), new_entities=len(ent.qid) - cfg.initial_entities, news=len(news.nid),
        ctr=float(clicks.mean()), candidates=int(len(cand)),
    )
    (out / "synth.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return summary
