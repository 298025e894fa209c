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


@pytest.fixture(scope="session")
def tiny_encoder_path(tmp_path_factory) -> Path:
    """A small random BERT saved as a Hugging Face folder (3 layers, width 32), with MiniLM's tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from ip2_stream.model.text import resolve_encoder_path

    out = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(resolve_encoder_path(None), local_files_only=True)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=64)
    BertModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
