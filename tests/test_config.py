from __future__ import annotations

import pytest

from ip2_stream.config import load_settings, parse_assignments
from ip2_stream.errors import ConfigError


def test_yaml_then_overrides_take_precedence(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  skip_bad: true\nsynth:\n  preset: tiny\n  users: 300\neval:\n  seed: 5\n", encoding="utf-8")
    s = load_settings(path, parse_assignments(["eval.seed=9"]))
    assert s.data.skip_bad is True and s.eval.seed == 9
    # the preset sets every size, then explicit keys refine it
    assert s.synth.preset == "tiny" and s.synth.users == 300 and s.synth.news == 700


def test_errors_are_clear(tmp_path):
    with pytest.raises(ConfigError, match="invalid setting data.nonsense"):
        load_settings(None, {"data.nonsense": 1})
    with pytest.raises(ConfigError, match="invalid setting synth.users"):
        load_settings(None, {"synth.users": -5})
    with pytest.raises(ConfigError, match="unknown preset"):
        load_settings(None, {"synth.preset": "huge"})
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="section.key=value"):
        parse_assignments(["novalue"])
