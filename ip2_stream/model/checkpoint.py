"""Checkpoints: weights in safetensors (nothing executes on load) plus a JSON manifest.

A checkpoint is a folder::

    model.safetensors   trainable weights (the frozen encoder bottom is reloaded from its path)
    manifest.json       format, config, vocabulary, versions, encoder fingerprint, data
                        fingerprint, parent, metrics and anything the caller adds

The growable entity table is stored as one tensor; loading rebuilds it as a single chunk.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ip2_stream import __version__
from ip2_stream.data.vocab import Vocab
from ip2_stream.errors import IP2StreamError
from ip2_stream.model.ip2 import IP2Config, IP2Model, build_model
from ip2_stream.model.text import TitleEncoder, load_hf

FORMAT = "ip2-stream/checkpoint"
VERSION = 1
WEIGHTS = "model.safetensors"
MANIFEST = "manifest.json"
_TABLE = "news.entity.table.chunks."


def _versions() -> dict:
    import transformers

    return {"ip2_stream": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version()}


def trainable_state(model: IP2Model) -> dict[str, torch.Tensor]:
    """Every tensor of the model except the pretrained encoder's, entity table chunks joined.

    The encoder's trainable top layers are kept under their ``top_layers`` names; everything
    under ``encoder.model`` (the frozen bottom, and the same top layers a second time) is
    reloaded from the encoder path.
    """
    state = {k: v for k, v in model.state_dict().items() if ".encoder.model." not in k}
    chunks = sorted((k for k in state if k.startswith(_TABLE)), key=lambda k: int(k[len(_TABLE):]))
    if chunks:
        state[_TABLE + "0"] = torch.cat([state.pop(k) for k in chunks])
    return {k: v.detach().contiguous().clone() for k, v in state.items()}


def save_checkpoint(path: Path | str, model: IP2Model, cfg: IP2Config, vocab: Vocab, **manifest) -> Path:
    """Write ``model.safetensors`` and ``manifest.json`` into folder ``path`` (atomically per file)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tmp = path / f".{WEIGHTS}.tmp{os.getpid()}"
    save_file(trainable_state(model), str(tmp))
    tmp.replace(path / WEIGHTS)
    encoder = model.news.title.encoder if model.news.title is not None else None
    payload = {
        "format": FORMAT, "version": VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "config": cfg.model_dump(mode="json"),
        "trainable_layers": encoder.trainable_layers if encoder is not None else 0,
        "encoder_fingerprint": encoder.fingerprint() if encoder is not None else None,
        "vocab": vocab.to_dict(), "versions": _versions(), **manifest,
    }
    tmp = path / f".{MANIFEST}.tmp{os.getpid()}"
    tmp.write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
    tmp.replace(path / MANIFEST)
    return path


@dataclass
class Checkpoint:
    model: IP2Model
    config: IP2Config
    vocab: Vocab
    encoder: TitleEncoder | None
    manifest: dict


def read_manifest(path: Path | str) -> dict:
    path = Path(path)
    if not (path / MANIFEST).is_file() or not (path / WEIGHTS).is_file():
        raise IP2StreamError(f"{path}: not a checkpoint (needs {MANIFEST} and {WEIGHTS})")
    manifest = json.loads((path / MANIFEST).read_text(encoding="utf-8"))
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise IP2StreamError(f"{path}: unsupported checkpoint format {manifest.get('format')!r} v{manifest.get('version')}")
    return manifest


def load_checkpoint(path: Path | str, encoder: TitleEncoder | None = None, config: IP2Config | None = None) -> Checkpoint:
    """Rebuild the model of a checkpoint folder.

    Args:
        path: checkpoint folder.
        encoder: an already loaded title encoder to reuse (it must match the fingerprint).
        config: override the stored architecture (it must have the same weights).
    """
    path = Path(path)
    manifest = read_manifest(path)
    cfg = config or IP2Config.model_validate(manifest["config"])
    vocab = Vocab.from_dict(manifest["vocab"])
    if cfg.towers != "entity" and encoder is None:
        encoder = TitleEncoder(*load_hf(cfg.text_encoder), trainable_layers=manifest["trainable_layers"], max_len=cfg.max_title_len)
    if encoder is not None and manifest.get("encoder_fingerprint") and encoder.fingerprint() != manifest["encoder_fingerprint"]:
        raise IP2StreamError(f"{path}: the text encoder differs from the one this checkpoint was trained with")
    state = load_file(str(path / WEIGHTS))
    rows = state[_TABLE + "0"].shape[0] if _TABLE + "0" in state else len(vocab)
    model = build_model(cfg, encoder, rows)
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if ".encoder.model." not in k]
    if missing or unexpected:
        raise IP2StreamError(f"{path}: weights do not fit the architecture (missing {missing[:3]}, unexpected {unexpected[:3]})")
    return Checkpoint(model, cfg, vocab, encoder, manifest)
