"""The ip2-stream command as a user runs it: a subprocess, JSON out, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "ip2_stream.cli.main", "--log-level", "WARNING", *args],
                          capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.mark.parametrize("cmd", [[], ["data"], ["data", "synth"], ["data", "inspect"], ["evaluate"], ["demo"]])
def test_help_exists_for_every_command(cmd):
    result = cli(*cmd, "--help")
    assert result.returncode == 0 and "Usage" in result.stdout


def test_synth_inspect_evaluate(tmp_path):
    out = tmp_path / "data"
    gen = cli("data", "synth", "--out", str(out), "--preset", "tiny", "--seed", "2", "--users", "150")
    assert gen.returncode == 0, gen.stderr
    assert json.loads(gen.stdout)["splits"]["train"]["impressions"] > 0
    inspected = cli("data", "inspect", str(out), "--cache-dir", str(tmp_path / "c"), "--json", str(tmp_path / "i.json"))
    assert inspected.returncode == 0, inspected.stderr
    summary = json.loads(inspected.stdout)
    assert json.loads((tmp_path / "i.json").read_text()) == summary
    dev = summary["dev"]
    for key in ("impressions", "users", "news", "clicks", "candidate_rows", "ctr", "candidates_per_impression",
                "entities", "time_span", "news_with_title_entity", "empty_history_impressions"):
        assert key in dev
    assert dev["users"] <= 150 and dev["clicks"] >= dev["impressions"]
    evaluated = cli("--set", f"data.cache_dir={tmp_path / 'c'}", "evaluate", "--data", str(out), "--baseline", "popularity")
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(evaluated.stdout)
    assert report["scorer"] == "popularity" and 0 < report["overall"]["auc"] < 1 and report["oracle_auc"] > 0.6


def test_errors_are_one_line_with_nonzero_exit(tmp_path):
    missing = cli("data", "inspect", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert missing.stderr.strip() == f"ip2-stream: error: {tmp_path / 'nope'}: no such directory"
    split = tmp_path / "s"
    split.mkdir()
    (split / "news.tsv").write_text("N1\tnews\tnewsus\tT\tA\tU\t[]\t[]\nbroken line\n", encoding="utf-8")
    (split / "behaviors.tsv").write_text("1\tU1\t11/15/2019 8:00:00 AM\t\tN1-1\n", encoding="utf-8")
    strict = cli("data", "inspect", str(split), "--cache-dir", str(tmp_path / "c"))
    assert strict.returncode == 2 and "news.tsv:2: expected 8 tab-separated columns, found 1" in strict.stderr
    assert len(strict.stderr.strip().splitlines()) == 1
    lenient = cli("data", "inspect", str(split), "--skip-bad", "--cache-dir", str(tmp_path / "c"))
    assert lenient.returncode == 0 and json.loads(lenient.stdout)[split.name]["bad_lines_skipped"] == 1
    assert "skipped 1 malformed line" in lenient.stderr
    unknown = cli("evaluate", "--data", str(split), "--baseline", "magic")
    assert unknown.returncode == 2 and "unknown baseline 'magic'" in unknown.stderr
    bad_set = cli("--set", "synth.users=-1", "data", "synth", "--out", str(tmp_path / "x"))
    assert bad_set.returncode == 2 and "invalid setting synth.users" in bad_set.stderr


def test_usage_errors_exit_2_without_traceback():
    result = cli("evaluate", "--no-such-flag")
    assert result.returncode == 2 and "No such option" in result.stderr and "Traceback" not in result.stderr
