"""IP2: entity-guided interest probing (RecSys 2025), as specified in ``shared/spec/IP2_MODEL.md``.

News encoder = title tower (pretrained encoder, additive-attention pooling, ``r_t``) + Signature
Entity Encoder (growable entity table, 2-layer Transformer over ``[category, subcategory,
e1..en]``, the output at position 0 is the signature, ``r_e``). User encoder = two towers over
the history with a cross-tower link (the title tower attends to the entity history and vice
versa), each pooled by additive attention. Two gates mix the towers for the user and the
candidate; the score is a dot product.

Ablations are compositions of these modules (see :func:`build_model`): self-attention instead
of the cross link, a single tower, or the average of the two tower scores instead of the gates.

Shapes: B batch, N news, L history length, S entity-sequence length, T tokens, H encoder width,
D news width (400), De entity width (100).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from ip2_stream.model.text import TitleEncoder


class IP2Config(BaseModel):
    """Architecture of an IP2 model (and of its ablations)."""

    model_config = ConfigDict(extra="forbid")

    text_encoder: str | None = Field(None, description="Hugging Face path; None: the packaged all-MiniLM-L6-v2")
    trainable_layers: int | Literal["auto"] = Field(
        "auto", description="top encoder layers that train (reference 2); auto: 2 with a GPU, 0 on CPU"
    )
    max_title_len: int = 21
    max_entities: int = 16
    history_len: int = 50
    news_dim: int = 400
    entity_dim: int = 100
    see_layers: int = 2
    see_heads: int = 5
    see_ff: int = 400
    see_dropout: float = 0.5
    see_input_dropout: float = 0.1
    user_heads: int = 20
    title_dropout: float = 0.2
    towers: Literal["both", "title", "entity"] = "both"
    user_attention: Literal["cross", "self"] = "cross"
    combine: Literal["gate", "average"] = "gate"
    entity_init: Literal["random", "transe"] = "random"
    freeze_entities: bool = False

    def resolved_trainable_layers(self) -> int:
        if self.trainable_layers == "auto":
            return 2 if torch.cuda.is_available() else 0
        return int(self.trainable_layers)


# --------------------------------------------------------------------------------------
# building blocks
# --------------------------------------------------------------------------------------
def masked_softmax(logits: torch.Tensor, mask: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """Softmax over positions where ``mask`` is True; all-masked rows give zeros, not NaN."""
    logits = logits.masked_fill(~mask, float("-inf"))
    weights = torch.softmax(logits, dim=dim)
    return torch.nan_to_num(weights, nan=0.0)


class AdditiveAttention(nn.Module):
    """Pool a sequence with additive attention: ``softmax(q . tanh(W x + b))``.

    Args:
        in_dim: width of the sequence.
        hidden_dim: width of the attention projection.

    Example:
        >>> pool = AdditiveAttention(8, 4)
        >>> pool(torch.randn(2, 5, 8), torch.ones(2, 5, dtype=torch.bool)).shape
        torch.Size([2, 8])
    """

    def __init__(self, in_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.proj = nn.Linear(in_dim, hidden_dim)
        self.query = nn.Linear(hidden_dim, 1, bias=False)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # x: [B, L, in], mask: [B, L] True = keep
        scores = self.query(torch.tanh(self.proj(x))).squeeze(-1)  # [B, L]
        weights = masked_softmax(scores, mask)  # [B, L]
        return torch.einsum("bl,bld->bd", weights, x)  # [B, in]


class ProjectionAttention(nn.Module):
    """Multi-head attention with Q/K/V projections (bias, Xavier-uniform) and no output projection.

    Args:
        dim: model width (400).
        heads: number of heads (20 heads of 20 dims in the reference).
    """

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        for lin in (self.q, self.k, self.v):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, key_mask: torch.Tensor) -> torch.Tensor:
        # query/key/value: [B, L, D]; key_mask: [B, L] True = valid key
        B, L, D = query.shape
        h, dh = self.heads, D // self.heads

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(B, -1, h, dh).transpose(1, 2)  # [B, h, L, dh]

        q, k, v = split(self.q(query)), split(self.k(key)), split(self.v(value))
        # softmax(q k^T / sqrt(dh)) v over valid keys; a row with no valid key gives zeros
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask[:, None, None, :])  # [B, h, L, dh]
        out = torch.nan_to_num(out, nan=0.0)
        return out.transpose(1, 2).reshape(B, L, D)  # [B, L, D]


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """[length, dim] fixed sinusoidal position encodings."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    rate = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(pos * rate)
    table[:, 1::2] = torch.cos(pos * rate[: dim // 2])
    return table


class GrowableEmbedding(nn.Module):
    """An embedding table that grows by whole chunks of rows.

    Existing rows live in existing parameters, so growth neither moves them nor resets their
    optimizer state: the caller adds the new chunk to its optimizer
    (``optimizer.add_param_group({"params": [new]})``). Rows are rescaled to norm <= ``max_norm``
    at lookup. Row 0 is padding.

    Args:
        rows: initial number of rows (padding included).
        dim: row width.
        max_norm: rows longer than this are scaled down at lookup.
        init_std: standard deviation of the normal init of the first rows. Grown rows are random
            directions of length ``max_norm`` (longer rows would be scaled down at lookup, and
            so would their gradients: a new row must move at the optimizer's pace).

    Example:
        >>> table = GrowableEmbedding(5, 3)
        >>> new = table.grow(2)
        >>> table(torch.tensor([[6, 0]])).shape, len(table)
        (torch.Size([1, 2, 3]), 7)
    """

    def __init__(self, rows: int, dim: int, max_norm: float = 1.0, init_std: float = 1.0) -> None:
        super().__init__()
        self.dim, self.max_norm, self.init_std = dim, max_norm, init_std
        self.chunks = nn.ParameterList([nn.Parameter(torch.randn(rows, dim) * init_std)])

    def __len__(self) -> int:
        return sum(c.shape[0] for c in self.chunks)

    @property
    def weight(self) -> torch.Tensor:
        return torch.cat(list(self.chunks)) if len(self.chunks) > 1 else self.chunks[0]

    def grow(self, n: int) -> nn.Parameter:
        """Append ``n`` rows; returns the new parameter (add it to the optimizer)."""
        ref = self.chunks[0]
        rows = F.normalize(torch.randn(n, self.dim, device=ref.device, dtype=ref.dtype), dim=-1) * self.max_norm
        new = nn.Parameter(rows, requires_grad=ref.requires_grad)
        self.chunks.append(new)
        return new

    def set_rows(self, ids: torch.Tensor, values: torch.Tensor) -> None:
        """Overwrite rows (e.g. with TransE vectors) without autograd."""
        with torch.no_grad():
            offset = 0
            for chunk in self.chunks:
                sel = (ids >= offset) & (ids < offset + chunk.shape[0])
                chunk[ids[sel] - offset] = values[sel].to(chunk.dtype)
                offset += chunk.shape[0]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        # ids: [...]; returns [..., dim] with every row's norm <= max_norm
        rows = F.embedding(ids, self.weight)
        norms = rows.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return rows * (self.max_norm / norms).clamp(max=1.0)


# --------------------------------------------------------------------------------------
# news encoder
# --------------------------------------------------------------------------------------
class TitleTower(nn.Module):
    """Title -> ``r_t``: trainable encoder top, additive pooling, ``LeakyReLU(Dropout(Linear))``.

    Args:
        encoder: a :class:`TitleEncoder` (its bottom output is the input here).
        out_dim: width of ``r_t`` (400).
        dropout: dropout before the projection (0.2; off in pre-training).
    """

    def __init__(self, encoder: TitleEncoder, out_dim: int, dropout: float) -> None:
        super().__init__()
        self.encoder = encoder
        self.pool = AdditiveAttention(encoder.hidden_size, out_dim)
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(encoder.hidden_size, out_dim)

    def forward(self, bottom: torch.Tensor, mask: torch.Tensor, dropout: bool = True) -> torch.Tensor:
        # bottom: [N, T, H] frozen-bottom states; mask: [N, T]
        hidden = self.encoder.top(bottom, mask)  # [N, T, H]
        pooled = self.pool(hidden, mask.bool())  # [N, H]
        if dropout:
            pooled = self.dropout(pooled)
        return F.leaky_relu(self.proj(pooled))  # [N, D]


class SignatureEntityEncoder(nn.Module):
    """``[category, subcategory, e1..en]`` -> signature entity (position 0) -> ``r_e``.

    Args:
        table: the (growable) entity/category table.
        out_dim: width of ``r_e`` (400).
        layers, heads, ff, dropout: the post-LN Transformer encoder (2, 5, 400, 0.5).
        input_dropout: dropout after adding positions (0.1).
        max_len: longest entity sequence (2 + max entities).
    """

    def __init__(self, table: GrowableEmbedding, out_dim: int, layers: int, heads: int, ff: int,
                 dropout: float, input_dropout: float, max_len: int) -> None:
        super().__init__()
        self.table = table
        self.register_buffer("positions", sinusoidal_positions(max_len, table.dim), persistent=False)
        self.input_dropout = nn.Dropout(input_dropout)
        layer = nn.TransformerEncoderLayer(table.dim, heads, ff, dropout, activation="relu", batch_first=True, norm_first=False)
        self.transformer = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.proj = nn.Linear(table.dim, out_dim)

    def signature(self, ids: torch.Tensor) -> torch.Tensor:
        # ids: [N, S] with 0 = padding; position 0 (the category) is never masked
        S = ids.shape[1]
        x = self.input_dropout(self.table(ids) + self.positions[:S])  # [N, S, De]
        pad = ids == 0
        pad[:, 0] = False
        return self.transformer(x, src_key_padding_mask=pad)[:, 0]  # [N, De]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(self.proj(self.signature(ids)))  # [N, D]


class NewsVectors(nn.Module):
    """Both news towers; either may be None for a single-tower model."""

    def __init__(self, title: TitleTower | None, entity: SignatureEntityEncoder | None) -> None:
        super().__init__()
        if title is None and entity is None:
            raise ValueError("a news encoder needs at least one tower")
        self.title, self.entity = title, entity

    def forward(self, bottom: torch.Tensor | None, token_mask: torch.Tensor | None, entity_ids: torch.Tensor | None,
                title_dropout: bool = True) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        r_t = self.title(bottom, token_mask, dropout=title_dropout) if self.title is not None else None  # [N, D]
        r_e = self.entity(entity_ids) if self.entity is not None else None  # [N, D]
        return r_t, r_e


# --------------------------------------------------------------------------------------
# user encoder, gates, model
# --------------------------------------------------------------------------------------
class DualTowerUserEncoder(nn.Module):
    """History -> ``(u_t, u_e)``. ``cross``: each tower attends to the other's history.

    Args:
        dim: news width (400).
        heads: attention heads (20).
        attention: ``cross`` (IP2) or ``self`` (ablation).
        towers: which towers exist.
    """

    def __init__(self, dim: int, heads: int, attention: Literal["cross", "self"], towers: Literal["both", "title", "entity"]) -> None:
        super().__init__()
        if attention == "cross" and towers != "both":
            raise ValueError("the cross-tower link needs both towers; use attention='self' for a single tower")
        self.attention, self.towers = attention, towers
        self.att_t = ProjectionAttention(dim, heads) if towers in ("both", "title") else None
        self.att_e = ProjectionAttention(dim, heads) if towers in ("both", "entity") else None
        self.norm = nn.LayerNorm(dim)  # shared by the towers, as in the reference
        self.pool_t = AdditiveAttention(dim, dim) if self.att_t is not None else None
        self.pool_e = AdditiveAttention(dim, dim) if self.att_e is not None else None

    def forward(self, T: torch.Tensor | None, E: torch.Tensor | None, mask: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        # T, E: [B, L, D] history vectors; mask: [B, L] True = real history item
        cross = self.attention == "cross"
        u_t = u_e = None
        if self.att_t is not None:
            keys = E if cross else T
            T2 = self.norm(self.att_t(T, keys, T, mask) + T)  # [B, L, D]
            u_t = self.pool_t(T2, mask)  # [B, D]
        if self.att_e is not None:
            keys = T if cross else E
            E2 = self.norm(self.att_e(E, keys, E, mask) + E)  # [B, L, D]
            u_e = self.pool_e(E2, mask)  # [B, D]
        return u_t, u_e


class Gate(nn.Module):
    """``a = sigmoid(Linear([x_t; x_e]))``, returns ``(a * x_t + (1 - a) * x_e, a)``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(2 * dim, 1)

    def forward(self, x_t: torch.Tensor, x_e: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = torch.sigmoid(self.linear(torch.cat([x_t, x_e], dim=-1)))  # [..., 1]
        return a * x_t + (1 - a) * x_e, a.squeeze(-1)


class IP2Model(nn.Module):
    """The IP2 ranker.

    Args:
        news: :class:`NewsVectors` (title tower and/or SEE).
        user: :class:`DualTowerUserEncoder`.
        combine: ``gate`` (learned user and candidate gates) or ``average`` (mean of tower scores).

    Example:
        >>> model = build_model(IP2Config(), encoder, vocab_size=100)  # doctest: +SKIP
        >>> scores = model.score(cand_t, cand_e, hist_t, hist_e, hist_mask)  # doctest: +SKIP
    """

    def __init__(self, news: NewsVectors, user: DualTowerUserEncoder, combine: Literal["gate", "average"], dim: int) -> None:
        super().__init__()
        self.news, self.user = news, user
        both = news.title is not None and news.entity is not None
        if combine == "gate" and not both:
            combine = "average"  # a single tower has nothing to gate
        self.combine = combine
        self.user_gate = Gate(dim) if combine == "gate" else None
        self.cand_gate = Gate(dim) if combine == "gate" else None
        self.last_gates: dict[str, torch.Tensor] = {}

    def user_vectors(self, hist_t: torch.Tensor | None, hist_e: torch.Tensor | None, mask: torch.Tensor):
        """History vectors [B, L, D] -> tower vectors ``(u_t, u_e)`` [B, D]."""
        return self.user(hist_t, hist_e, mask)

    def score(self, cand_t: torch.Tensor | None, cand_e: torch.Tensor | None,
              u_t: torch.Tensor | None, u_e: torch.Tensor | None) -> torch.Tensor:
        """Candidates [B, C, D] and user towers [B, D] -> scores [B, C]."""
        if self.combine == "gate":
            u, a = self.user_gate(u_t, u_e)  # [B, D], [B]
            c, b = self.cand_gate(cand_t, cand_e)  # [B, C, D], [B, C]
            self.last_gates = {"user": a.detach(), "candidate": b.detach()}
            return torch.einsum("bcd,bd->bc", c, u)
        parts = [torch.einsum("bcd,bd->bc", c, u) for c, u in ((cand_t, u_t), (cand_e, u_e)) if c is not None]
        return sum(parts) / len(parts)

    def forward(self, cand_t, cand_e, hist_t, hist_e, hist_mask) -> torch.Tensor:
        # cand_*: [B, C, D]; hist_*: [B, L, D]; hist_mask: [B, L] -> scores [B, C]
        u_t, u_e = self.user_vectors(hist_t, hist_e, hist_mask)
        return self.score(cand_t, cand_e, u_t, u_e)


def build_model(cfg: IP2Config, encoder: TitleEncoder | None, vocab_size: int) -> IP2Model:
    """Compose an IP2 model (or an ablation) from its config.

    Args:
        cfg: architecture.
        encoder: the title encoder (None when ``cfg.towers == "entity"``).
        vocab_size: rows of the entity table (``len(vocab)``).
    """
    title = TitleTower(encoder, cfg.news_dim, cfg.title_dropout) if cfg.towers in ("both", "title") else None
    entity = None
    if cfg.towers in ("both", "entity"):
        table = GrowableEmbedding(vocab_size, cfg.entity_dim)
        table.chunks[0].requires_grad_(not cfg.freeze_entities)
        entity = SignatureEntityEncoder(
            table, cfg.news_dim, cfg.see_layers, cfg.see_heads, cfg.see_ff, cfg.see_dropout, cfg.see_input_dropout,
            max_len=2 + cfg.max_entities,
        )
    attention = cfg.user_attention if cfg.towers == "both" else "self"
    user = DualTowerUserEncoder(cfg.news_dim, cfg.user_heads, attention, cfg.towers)
    return IP2Model(NewsVectors(title, entity), user, cfg.combine, cfg.news_dim)
