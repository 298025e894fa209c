"""Shared helpers for the bench scripts: results folder, peak RSS, the final JSON line."""

from __future__ import annotations

import json
import platform
import resource
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> dict:
    import os

    return {"python": sys.version.split()[0], "cpus": os.cpu_count(), "platform": platform.platform()}


def finish(name: str, payload: dict) -> None:
    """Write ``payload`` to bench/results/NAME.json and print it as the last line."""
    payload = {"bench": name, "when": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": machine(), **payload}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(payload), flush=True)
