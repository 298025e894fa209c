"""Generation time and peak memory of the synthetic MIND generator, per preset.

Each preset runs in its own process so peak memory is its own. Usage:

    python bench/synth_speed.py [--presets tiny small mind-small] [--seed 0]

The last printed line is ``{"presets": [{"preset", "seconds", "peak_rss_mb", ...}, ...]}``,
also written to ``bench/results/synth_speed.json``. ``budget_ratio`` is seconds divided by
the preset's time budget (mind-small: 180 s on 2 cores), so below 1 is within budget.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import finish  # noqa: E402

BUDGET_S = {"tiny": 10.0, "small": 60.0, "mind-small": 180.0}

CHILD = """
import json, sys, time
sys.path.insert(0, {bench!r})
from _common import peak_rss_mb
from ip2_stream.data.synth import SynthConfig, generate
t = time.perf_counter()
s = generate(SynthConfig.from_preset({preset!r}, seed={seed}), {out!r})
print(json.dumps({{"seconds": time.perf_counter() - t, "peak_rss_mb": peak_rss_mb(),
                  "impressions": sum(v["impressions"] for v in s["splits"].values()),
                  "news": s["news"], "entities": s["entities"], "ctr": s["ctr"]}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["tiny", "small", "mind-small"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets:
            code = CHILD.format(bench=str(Path(__file__).resolve().parent), preset=preset, seed=args.seed, out=f"{tmp}/{preset}")
            print(f"generating {preset} ...", flush=True)
            done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
            if done.returncode != 0:
                sys.exit(f"synth_speed: preset {preset} failed:\n{done.stderr[-2000:]}")
            row = {"preset": preset, **json.loads(done.stdout.strip().splitlines()[-1])}
            row["seconds"] = round(row["seconds"], 2)
            row["peak_rss_mb"] = round(row["peak_rss_mb"], 1)
            row["budget_s"] = BUDGET_S.get(preset)
            row["budget_ratio"] = round(row["seconds"] / row["budget_s"], 3) if row["budget_s"] else None
            print(f"  {preset}: {row['seconds']} s, peak {row['peak_rss_mb']} MiB, {row['impressions']} impressions", flush=True)
            rows.append(row)
    finish("synth_speed", {"presets": rows})


if __name__ == "__main__":
    main()
