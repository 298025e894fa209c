"""Stage-1 contrastive losses (InfoNCE with in-batch negatives) and stage-2 sampling loss."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(anchors: torch.Tensor, targets: torch.Tensor, tau: float) -> torch.Tensor:
    """Mean InfoNCE: anchor i's positive is target i, every other target is a negative.

    Args:
        anchors: [B, D].
        targets: [B, D].
        tau: temperature applied to cosine similarities.
    """
    logits = F.cosine_similarity(anchors[:, None, :], targets[None, :, :], dim=-1) / tau  # [B, B]
    return F.cross_entropy(logits, torch.arange(len(anchors), device=anchors.device))


def contrastive_losses(t: torch.Tensor, g: torch.Tensor, t_noisy: torch.Tensor, g_noisy: torch.Tensor,
                       tau: float = 0.1, weights: tuple[float, float, float] = (3.0, 2.0, 2.0)) -> dict[str, torch.Tensor]:
    """The three stage-1 losses and their weighted mean.

    ``L_ET``: each signature g_j against all titles (positive t_j); ``L_TT``: t against its noisy
    copies t~ (SimCSE-style); ``L_EE``: g against g~. ``L = (3 L_ET + 2 L_TT + 2 L_EE) / 7``.

    Args:
        t: [B, D] title vectors; g: [B, D] signature vectors; t_noisy, g_noisy: dropout copies.
    """
    l_et = info_nce(g, t, tau)
    l_tt = info_nce(t, t_noisy, tau)
    l_ee = info_nce(g, g_noisy, tau)
    w_et, w_tt, w_ee = weights
    total = (w_et * l_et + w_tt * l_tt + w_ee * l_ee) / (w_et + w_tt + w_ee)
    return {"loss": total, "l_et": l_et, "l_tt": l_tt, "l_ee": l_ee}


def click_loss(scores: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over [B, 1 + K] scores whose column 0 is the clicked news."""
    return F.cross_entropy(scores, torch.zeros(len(scores), dtype=torch.long, device=scores.device))
