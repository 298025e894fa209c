"""Summary statistics of MIND splits (``ip2-stream data inspect``)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from ip2_stream.data.dataset import MindSplit, find_splits


def _iso(seconds: int) -> str:
    return datetime.fromtimestamp(int(seconds), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")


def summarize_split(split: MindSplit) -> dict:
    """JSON-ready summary of one split (counts, CTR, candidate and history shape, entities, time span)."""
    news = split.news()
    beh = split.behaviors()
    cand_len = pc.list_value_length(beh.column("candidates")).to_numpy().astype(np.int64)
    hist_len = pc.list_value_length(beh.column("history")).to_numpy().astype(np.int64)
    labels = pc.list_flatten(beh.column("labels")).to_numpy()
    labeled = labels[labels >= 0]
    times = beh.column("time").to_numpy().astype("int64")
    title_ents = pc.list_value_length(news.column("title_entities")).to_numpy()
    abstract_ents = pc.list_value_length(news.column("abstract_entities")).to_numpy()
    entity_ids = set(pc.list_flatten(news.column("title_entities")).to_pylist())
    entity_ids.update(pc.list_flatten(news.column("abstract_entities")).to_pylist())
    vectors = split.entity_embeddings()
    clicks = int(labeled.sum())
    summary = {
        "path": str(split.path),
        "role": split.role,
        "impressions": int(beh.num_rows),
        "users": int(pc.count_distinct(beh.column("user_id")).as_py()),
        "news": int(news.num_rows),
        "clicks": clicks,
        "candidate_rows": int(cand_len.sum()),
        "labeled": bool(len(labeled) == len(labels)),
        "ctr": round(clicks / len(labeled), 6) if len(labeled) else None,
        "candidates_per_impression": {
            "mean": round(float(cand_len.mean()), 3) if len(cand_len) else 0.0,
            "median": float(np.median(cand_len)) if len(cand_len) else 0.0,
            "max": int(cand_len.max(initial=0)),
        },
        "history_length": {
            "mean": round(float(hist_len.mean()), 3) if len(hist_len) else 0.0,
            "max": int(hist_len.max(initial=0)),
        },
        "empty_history_impressions": int((hist_len == 0).sum()),
        "entities": len(entity_ids),
        "entity_vectors": int(vectors.num_rows) if vectors is not None else 0,
        "news_with_title_entity": round(float((title_ents > 0).mean()), 4) if len(title_ents) else 0.0,
        "news_with_any_entity": round(float(((title_ents + abstract_ents) > 0).mean()), 4) if len(title_ents) else 0.0,
        "time_span": {
            "first": _iso(times.min()) if len(times) else None,
            "last": _iso(times.max()) if len(times) else None,
            "hours": round(float(times.max() - times.min()) / 3600, 2) if len(times) else 0.0,
        },
        "bad_lines_skipped": sum(split.bad_lines.values()),
        "from_cache": all(split.from_cache.values()),
    }
    return summary


def inspect(root: Path | str, cache_dir: Path | None = None, skip_bad: bool = False) -> dict:
    """Summaries of every split under ``root``, keyed by role."""
    return {
        role: summarize_split(MindSplit(path, cache_dir, skip_bad)) for role, path in find_splits(root).items()
    }
