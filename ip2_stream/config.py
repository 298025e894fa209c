"""One typed configuration tree. YAML files and CLI flags both map onto it.

Precedence: defaults < YAML file (``--config``) < ``--set section.key=value`` < explicit flags.

Example:
    >>> s = load_settings(None, {"data.skip_bad": True})
    >>> s.data.skip_bad
    True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from ip2_stream.data.synth import SynthConfig
from ip2_stream.errors import ConfigError
from ip2_stream.model.ip2 import IP2Config
from ip2_stream.online.live import LiveConfig
from ip2_stream.train.trainer import FinetuneConfig, PretrainConfig


class DataConfig(BaseModel):
    """Where data comes from and how strictly it is read."""

    model_config = ConfigDict(extra="forbid")

    cache_dir: Path | None = None  # Parquet cache; None: ~/.cache/ip2-stream/parquet
    skip_bad: bool = False  # count and skip malformed lines instead of failing


class EvalConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    split: str = "dev"
    seed: int = 0


class TrainSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seed: int = 0
    threads: int | None = None  # torch intra-op threads; None: torch's default


class AblateConfig(BaseModel):
    """The training profile of ``ip2-stream ablate`` (every variant trains with it).

    The reference recipe (``pretrain`` / ``finetune`` sections) runs 2 + 15 epochs at learning
    rates tuned for MIND; this profile fits the whole ablation of the ``small`` synthetic
    preset into 30 minutes on 2 CPU cores.
    """

    model_config = ConfigDict(extra="forbid")

    variants: list[str] | None = None  # None: all of them
    pretrain: PretrainConfig = PretrainConfig(epochs=3, lr=1e-3)
    finetune: FinetuneConfig = FinetuneConfig(epochs=3, lr_rest=1e-3, lr_encoder=1e-4, max_samples_per_epoch=5000, patience=2)


class Settings(BaseModel):
    """The whole configuration of ip2-stream."""

    model_config = ConfigDict(extra="forbid")

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    data: DataConfig = DataConfig()
    synth: SynthConfig = SynthConfig.from_preset("small")
    eval: EvalConfig = EvalConfig()
    model: IP2Config = IP2Config()
    pretrain: PretrainConfig = PretrainConfig()
    finetune: FinetuneConfig = FinetuneConfig()
    train: TrainSettings = TrainSettings()
    ablate: AblateConfig = AblateConfig()
    live: LiveConfig = LiveConfig()


def _parse_scalar(text: str) -> Any:
    """Turn a ``--set`` value into YAML's idea of it (numbers, booleans, null, strings)."""
    return yaml.safe_load(text)


def parse_assignments(pairs: list[str]) -> dict[str, Any]:
    """``["data.skip_bad=true"]`` -> ``{"data.skip_bad": True}``."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set expects section.key=value, got {pair!r}")
        out[key.strip()] = _parse_scalar(value)
    return out


def _apply(tree: dict, dotted: str, value: Any) -> None:
    node = tree
    parts = dotted.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"cannot set {dotted}: {part} is not a section")
    node[parts[-1]] = value


def load_settings(path: Path | str | None, overrides: dict[str, Any] | None = None) -> Settings:
    """Settings from defaults, an optional YAML file and dotted-key overrides.

    Args:
        path: YAML file or None.
        overrides: ``{"section.key": value}``; None values are ignored (flag not given).
    """
    tree: dict = Settings().model_dump(mode="json")
    assignments: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
        assignments.update(_flatten(loaded))
    assignments.update({k: v for k, v in (overrides or {}).items() if v is not None})
    # a synth preset sets every size at once; other synth keys then refine it
    preset = assignments.get("synth.preset")
    if preset is not None:
        try:
            tree["synth"] = SynthConfig.from_preset(preset).model_dump(mode="json")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    for key, value in assignments.items():
        _apply(tree, key, value)
    try:
        return Settings.model_validate(tree)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"invalid setting {where}: {first['msg']}") from None


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(_flatten(value, dotted + "."))
        else:
            out[dotted] = value
    return out
