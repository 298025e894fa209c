"""``ip2-stream ablate``: the full model, every ablation and the baselines on the same data.

Every neural variant trains with the same profile (``Settings.ablate``) and seed on one shared
workspace; stage 1 runs once and every pre-trained variant starts from its news encoder. The
report (``ablation.json`` and ``ablation.md``) has one row per variant, overall and on the
cold-start slice, next to the oracle AUC.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ip2_stream.errors import ConfigError
from ip2_stream.eval.baselines import popularity_scores
from ip2_stream.eval.report import evaluation_report
from ip2_stream.model.ip2 import IP2Config, IP2Model
from ip2_stream.model.nrms import build_nrms
from ip2_stream.train.pipeline import Workspace, evaluate_model, fit, new_model, open_workspace
from ip2_stream.train.trainer import FinetuneConfig, PretrainConfig, pretrain

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Variant:
    """One row of the ablation: an architecture change, whether it starts pre-trained, and notes."""

    description: str
    model: dict = field(default_factory=dict)
    pretrained: bool = True
    finetune: dict = field(default_factory=dict)
    builder: str = "ip2"


VARIANTS: dict[str, Variant] = {
    "full": Variant("IP2: contrastive pre-training, cross-tower link, gates"),
    "no_pretrain": Variant("without contrastive pre-training (random entity rows)", pretrained=False),
    "transe_frozen": Variant("frozen entity_embedding.vec vectors (random where missing), no pre-training",
                             {"entity_init": "transe", "freeze_entities": True}, pretrained=False),
    "self_attention": Variant("self-attention MHA(T,T,T), MHA(E,E,E) instead of the cross link", {"user_attention": "self"}),
    "title_only": Variant("title tower only", {"towers": "title"}, pretrained=False),
    "entity_only": Variant("entity tower only (pre-trained SEE)", {"towers": "entity"}),
    "average": Variant("average of the two tower scores, no gates", {"combine": "average"}),
    "global_negatives": Variant("negative-sampling check: random global negatives instead of in-impression",
                                finetune={"negative_source": "global"}),
    "nrms": Variant("NRMS-style title-only baseline", pretrained=False, builder="nrms"),
}
ROW_KEYS = ("variant", "auc", "mrr", "ndcg5", "ndcg10", "auc_cold", "mrr_cold", "impressions", "impressions_cold", "oracle_auc")


def _row(name: str, report: dict, extra: dict | None = None) -> dict:
    o, c = report["overall"], report.get("cold_start", {})
    return {
        "variant": name, "auc": o["auc"], "mrr": o["mrr"], "ndcg5": o["ndcg5"], "ndcg10": o["ndcg10"],
        "auc_cold": c.get("auc"), "mrr_cold": c.get("mrr"), "impressions": o["impressions"],
        "impressions_cold": c.get("impressions"), "oracle_auc": report.get("oracle_auc"),
        "oracle_auc_cold": c.get("oracle_auc"), **(extra or {}),
    }


def _build(ws: Workspace, base: IP2Config, variant: Variant, seed: int) -> tuple[IP2Model, IP2Config]:
    cfg = base.model_copy(update=variant.model)
    if variant.builder == "nrms":
        torch.manual_seed(seed)  # its init must not depend on the variants run before it
        return build_nrms(cfg, ws.encoder.clone()), cfg.model_copy(update={"towers": "title"})
    return new_model(ws, cfg, seed), cfg


def run_ablation(data: Path, out: Path, base: IP2Config, pt: PretrainConfig, ft: FinetuneConfig, seed: int,
                 variants: list[str] | None = None, cache_dir: Path | None = None) -> dict:
    """Train and evaluate every variant; write ``ablation.json`` and ``ablation.md`` into ``out``."""
    names = variants or list(VARIANTS)
    unknown = [n for n in names if n not in VARIANTS and n != "popularity"]
    if unknown:
        raise ConfigError(f"unknown ablation variant(s) {unknown}; choose from {sorted(VARIANTS)} or popularity")
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    ws = open_workspace(data, ("train", "dev"), base, cache_dir)
    rows: list[dict] = []
    if "popularity" in names or variants is None:
        rows.append(_row("popularity", evaluation_report(ws.corpus, "dev", popularity_scores(ws.corpus, "dev"), "popularity"),
                         {"description": "clicks so far (causal)"}))
    pretrained_state = None
    if any(VARIANTS[n].pretrained for n in names if n in VARIANTS):
        t0 = time.perf_counter()
        donor = new_model(ws, base, seed)
        pt_summary = pretrain(donor, ws.feats, ws.train_news(), pt, seed)
        pretrained_state = {k: v for k, v in donor.state_dict().items() if k.startswith("news.")}
        logger.info("stage 1 done in %.0f s (loss %s)", time.perf_counter() - t0, [e["loss"] for e in pt_summary["epochs"]])
    for name in names:
        if name not in VARIANTS:
            continue
        variant = VARIANTS[name]
        t0 = time.perf_counter()
        model, cfg = _build(ws, base, variant, seed)
        if variant.pretrained:
            model.load_state_dict(
                {k: v for k, v in pretrained_state.items() if k in model.state_dict() and model.state_dict()[k].shape == v.shape},
                strict=False,
            )
        summary = fit(ws, model, cfg, ft.model_copy(update=variant.finetune), seed)
        report = evaluate_model(ws, model, cfg, "dev", name)
        gates = report["health"]["gates"]
        row = _row(name, report, {
            "description": variant.description, "best_epoch": summary["best_epoch"],
            "valid_auc": summary["best_valid_auc"], "seconds": round(time.perf_counter() - t0, 1),
            "user_gate_mean": gates["user"]["mean"] if gates else None,
            "signature_collapse": report["health"]["signature_collapse"],
        })
        logger.info("%s: dev AUC %.4f, cold AUC %.4f (%.0f s)", name, row["auc"], row["auc_cold"] or float("nan"), row["seconds"])
        rows.append(row)
        (out / "ablation.json").write_text(json.dumps({"rows": rows}, indent=2), encoding="utf-8")
    result = {
        "data": str(data), "seed": seed, "oracle_auc": rows[0]["oracle_auc"] if rows else None,
        "profile": {"pretrain": pt.model_dump(), "finetune": ft.model_dump(), "model": base.model_dump(mode="json")},
        "seconds": round(time.perf_counter() - started, 1), "rows": rows,
    }
    (out / "ablation.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    (out / "ablation.md").write_text(markdown_table(result), encoding="utf-8")
    return result


def markdown_table(result: dict) -> str:
    def f(x):
        return "" if x is None else f"{x:.4f}" if isinstance(x, float) else str(x)

    lines = [
        f"# Ablation on {result['data']} (seed {result['seed']}, {result['seconds']:.0f} s)", "",
        f"Oracle AUC (true click probabilities): {f(result['oracle_auc'])}", "",
        "| variant | AUC | MRR | nDCG@5 | nDCG@10 | AUC cold | MRR cold | impressions | cold | gap to oracle AUC |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in result["rows"]:
        gap = (r["oracle_auc"] - r["auc"]) if r["oracle_auc"] is not None else None
        lines.append(f"| {r['variant']} | {f(r['auc'])} | {f(r['mrr'])} | {f(r['ndcg5'])} | {f(r['ndcg10'])} | "
                     f"{f(r['auc_cold'])} | {f(r['mrr_cold'])} | {r['impressions']} | {f(r['impressions_cold'])} | {f(gap)} |")
    lines += ["", "Variants:", ""] + [f"- `{r['variant']}`: {r.get('description', '')}" for r in result["rows"]]
    return "\n".join(lines) + "\n"
