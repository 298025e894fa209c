"""Model inputs per news item and batch assembly shared by training, evaluation and serving.

Each news item of a corpus has a row in the frozen-bottom cache (title) and an entity
sequence ``[category, subcategory, e1..en]``. A batch names news by corpus index; every
distinct news item of the batch (candidates and histories) is encoded once and gathered.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ip2_stream.data.dataset import Behaviors, Corpus
from ip2_stream.data.vocab import Vocab
from ip2_stream.model.ip2 import IP2Model
from ip2_stream.model.text import BottomCache, LiveBottom


@dataclass
class NewsFeatures:
    """Per-news inputs indexed by corpus news index.

    Args:
        bottom_rows: [N] row of each title in ``cache`` (None without a title tower).
        entity_ids: [N, 2 + max_entities] entity sequences, 0-padded.
        entity_len: [N] real length of each sequence.
        cache: the frozen-bottom cache, or a :class:`LiveBottom` (None without a title tower).
    """

    bottom_rows: torch.Tensor | None
    entity_ids: torch.Tensor
    entity_len: torch.Tensor
    cache: BottomCache | LiveBottom | None

    @classmethod
    def build(cls, corpus: Corpus, vocab: Vocab, cache: BottomCache | LiveBottom | None, max_entities: int) -> NewsFeatures:
        rows = cache.rows(corpus.column("title")) if cache is not None else None
        seqs = [
            vocab.encode_news(c, s, e, max_entities=max_entities)
            for c, s, e in zip(corpus.column("category"), corpus.column("subcategory"), corpus.column("title_entities"))
        ]
        ids = torch.zeros(len(seqs), 2 + max_entities, dtype=torch.long)
        for i, seq in enumerate(seqs):
            ids[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        return cls(rows, ids, torch.tensor([len(s) for s in seqs]), cache)

    def encode(self, model: IP2Model, news: torch.Tensor, title_dropout: bool = True):
        """``(r_t, r_e)`` [M, D] of the news with corpus indices ``news`` [M]."""
        bottom = mask = ids = None
        if model.news.title is not None:
            bottom, mask = self.cache.get(self.bottom_rows[news])
        if model.news.entity is not None:
            width = int(self.entity_len[news].max())
            ids = self.entity_ids[news, :width]
        return model.news(bottom, mask, ids, title_dropout=title_dropout)


def history_matrix(beh: Behaviors, imps: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
    """The last ``length`` clicks of each impression, left-padded: news [B, L] (-1 pad), mask [B, L]."""
    out = np.full((len(imps), length), -1, dtype=np.int64)
    for row, i in enumerate(imps):
        hist = beh.history(int(i))[-length:]
        if len(hist):
            out[row, length - len(hist) :] = hist
    return out, out >= 0


def gather(vectors: torch.Tensor | None, positions: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor | None:
    """Rows of ``vectors`` [M, D] at ``positions`` [...]; zeros where ``valid`` is False."""
    if vectors is None:
        return None
    out = vectors[positions.clamp_min(0)]
    if valid is not None:
        out = out * valid.unsqueeze(-1)
    return out


def encode_batch(model: IP2Model, feats: NewsFeatures, cands: np.ndarray, hist: np.ndarray, title_dropout: bool = True):
    """Encode the distinct news of a batch once, then gather candidates and histories.

    Args:
        cands: [B, C] candidate news indices.
        hist: [B, L] history news indices, -1 for padding.

    Returns:
        ``(cand_t, cand_e, hist_t, hist_e, hist_mask)`` with [B, C, D], [B, L, D] and [B, L].
    """
    flat = np.concatenate([cands.ravel(), hist[hist >= 0]])
    uniq, inverse = np.unique(flat, return_inverse=True)
    r_t, r_e = feats.encode(model, torch.from_numpy(uniq), title_dropout=title_dropout)
    cand_pos = torch.from_numpy(inverse[: cands.size].reshape(cands.shape))
    hist_pos = torch.full(hist.shape, -1, dtype=torch.long)
    hist_pos[torch.from_numpy(hist >= 0)] = torch.from_numpy(inverse[cands.size :])
    mask = hist_pos >= 0
    return gather(r_t, cand_pos), gather(r_e, cand_pos), gather(r_t, hist_pos, mask), gather(r_e, hist_pos, mask), mask
