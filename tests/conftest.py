"""Shared fixtures: seeded, generated MIND data sets and a private Parquet cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from ip2_stream.data.synth import SynthConfig, generate


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mind-tiny")
    generate(SynthConfig.from_preset("tiny", seed=7), out)
    return out


@pytest.fixture(scope="session")
def small_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mind-small-preset")
    generate(SynthConfig.from_preset("small", seed=0), out)
    return out


@pytest.fixture()
def cache_dir(tmp_path) -> Path:
    return tmp_path / "cache"


def write_split(folder: Path, news_lines: list[str], behavior_lines: list[str]) -> Path:
    """A hand-written MIND split (lines without trailing newlines)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "news.tsv").write_text("".join(line + "\n" for line in news_lines), encoding="utf-8")
    (folder / "behaviors.tsv").write_text("".join(line + "\n" for line in behavior_lines), encoding="utf-8")
    return folder
