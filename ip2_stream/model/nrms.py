"""NRMS-style title-only baseline (Wu et al., 2019) on the same pretrained title encoder.

News: token states -> multi-head self-attention -> additive pooling -> projection. User:
multi-head self-attention over the clicked news -> additive pooling. Score: dot product.
It reuses IP2's building blocks and the :class:`IP2Model` interface, so it trains and
evaluates with the same code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ip2_stream.model.ip2 import (
    DualTowerUserEncoder,
    IP2Config,
    IP2Model,
    NewsVectors,
    ProjectionAttention,
    TitleTower,
)
from ip2_stream.model.text import TitleEncoder


class NRMSTitleTower(TitleTower):
    """A :class:`TitleTower` with token-level multi-head self-attention before pooling.

    Args:
        encoder: the title encoder.
        out_dim: news width.
        dropout: dropout before the projection.
        heads: token self-attention heads (must divide the encoder width).
    """

    def __init__(self, encoder: TitleEncoder, out_dim: int, dropout: float, heads: int) -> None:
        super().__init__(encoder, out_dim, dropout)
        self.token_attention = ProjectionAttention(encoder.hidden_size, heads)

    def forward(self, bottom: torch.Tensor, mask: torch.Tensor, dropout: bool = True) -> torch.Tensor:
        # bottom: [N, T, H]; mask: [N, T]
        hidden = self.encoder.top(bottom, mask)  # [N, T, H]
        keep = mask.bool()
        hidden = self.token_attention(hidden, hidden, hidden, keep)  # [N, T, H]
        pooled = self.pool(hidden, keep)  # [N, H]
        if dropout:
            pooled = self.dropout(pooled)
        return F.leaky_relu(self.proj(pooled))  # [N, D]


def build_nrms(cfg: IP2Config, encoder: TitleEncoder, heads: int = 12) -> IP2Model:
    """NRMS on ``encoder`` with the news width and user heads of ``cfg``."""
    title = NRMSTitleTower(encoder, cfg.news_dim, cfg.title_dropout, heads)
    user = DualTowerUserEncoder(cfg.news_dim, cfg.user_heads, "self", "title")
    return IP2Model(NewsVectors(title, None), user, "average", cfg.news_dim)
