"""Configuration and shared plumbing of the live loop (what every actor is constructed with)."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import torch
from pydantic import BaseModel, ConfigDict, Field

from ip2_stream.data.vocab import Vocab
from ip2_stream.model.checkpoint import Checkpoint, load_checkpoint, read_manifest, save_checkpoint
from ip2_stream.model.ip2 import IP2Model
from ip2_stream.online.learners import OnlineConfig
from ip2_stream.registry import Registry
from ip2_stream.stream.io import StreamConfig

logger = logging.getLogger(__name__)


class LiveConfig(BaseModel):
    """Everything an actor of the live loop needs; serialisable, passed to each actor."""

    model_config = ConfigDict(extra="forbid")

    state_dir: Path = Field(Path("runs/live"), description="actor snapshots and the registry live here")
    broker_dir: Path = Field(Path("runs/broker"), description="state and log of the embedded broker")
    ray_address: str | None = Field(None, description="Ray cluster to run on (None: a local Ray in the foreground)")
    init_checkpoint: Path | None = Field(None, description="offline checkpoint the registry starts from")
    bootstrap: str = Field("", description="Kafka bootstrap servers (filled from stream config / embedded broker)")
    stream: StreamConfig = StreamConfig()
    online: OnlineConfig = OnlineConfig()
    seed: int = 0
    auto_promote: bool = True
    snapshot_period_s: float = Field(1.0, gt=0, description="news store snapshot cadence")
    keep_versions: int = Field(20, ge=2, description="registry versions kept after each publish (plus the promoted one, "
                                                      "the last promotions and each learner's newest)")

    @property
    def registry_dir(self) -> Path:
        return self.state_dir / "registry"


def bootstrap_registry(cfg: LiveConfig) -> Registry:
    """The registry, seeded with ``init_checkpoint`` as version 1 when it is empty."""
    registry = Registry(cfg.registry_dir)
    if registry.latest() is None:
        if cfg.init_checkpoint is None:
            raise ValueError("the registry is empty and no init_checkpoint is configured")
        registry.publish_if_empty(cfg.init_checkpoint, note=f"initial model from {cfg.init_checkpoint}")
    return registry


def learner_state(registry: Registry, role: str) -> dict:
    """The state a learner stored with its newest published version (empty when it never published)."""
    for info in reversed(registry.versions()):
        if role in info.learner_state:
            return read_manifest(info.path)["learner_state"][role]
    return {}


def load_version(registry: Registry, version: int | None = None) -> Checkpoint:
    info = registry.get(version) if version is not None else registry.latest()
    return load_checkpoint(info.path)


def publish(registry: Registry, cfg: LiveConfig, model: IP2Model, ckpt: Checkpoint, vocab: Vocab, changed: tuple[str, ...],
            role: str, state: dict, note: str, metrics: dict | None = None, offsets: dict | None = None) -> int:
    """Write ``model`` to a staging checkpoint and publish its ``changed`` parts with the learner's state."""
    staging = cfg.state_dir / "staging" / role
    shutil.rmtree(staging, ignore_errors=True)
    save_checkpoint(staging, model, ckpt.config, vocab, learner_state={role: state},
                    stage=f"online-{role}", parent_manifest=ckpt.manifest.get("registry_version"))
    version = registry.publish(staging, changed=changed, metrics=metrics, offsets=offsets, note=note, promote=cfg.auto_promote)
    registry.prune(cfg.keep_versions)
    return version


def refresh_part(model: IP2Model, source: IP2Model, prefix: str) -> None:
    """Copy the parameters under ``prefix`` from ``source`` into ``model`` in place (growing its table)."""
    mine = dict(model.named_parameters())
    theirs = dict(source.named_parameters())
    if prefix.startswith("news.entity") and model.news.entity is not None:
        table, other = model.news.entity.table, source.news.entity.table
        if len(other) > len(table):
            table.grow(len(other) - len(table))
        with torch.no_grad():
            table.set_rows(torch.arange(len(other)), other.weight.detach())
    with torch.no_grad():
        for name, p in theirs.items():
            if name.startswith(prefix) and ".table." not in name and name in mine and mine[name].shape == p.shape:
                mine[name].copy_(p)


def process_memory() -> dict:
    """pid and peak resident memory (MiB) of the calling process (an actor's)."""
    import resource

    return {"pid": os.getpid(), "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
