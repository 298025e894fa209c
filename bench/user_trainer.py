"""User-tower trainer throughput: impressions/s of `UserTowerLearner.learn_many` with its
news-vector cache versus re-encoding every news item of every step (the first version), on the
same impressions from the same initial model, in one process (no Ray: fetching over Ray would
only widen the gap).

Default model (all-MiniLM-L6-v2 title encoder, CPU profile) on the `small` synthetic preset;
the impressions are the first --impressions of the train split, learned in arrival order.
Usage:

    python bench/user_trainer.py [--impressions 1500]

Last line: {"cached_impressions_per_s", "uncached_impressions_per_s", "ratio", ...}; also
bench/results/user_trainer.json.
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import finish, peak_rss_mb  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--impressions", type=int, default=1500)
    parser.add_argument("--preset", default="small")
    args = parser.parse_args()
    import torch

    from ip2_stream.data.synth import SynthConfig, generate
    from ip2_stream.data.vocab import Vocab
    from ip2_stream.model.ip2 import IP2Config
    from ip2_stream.model.text import BottomCache
    from ip2_stream.online.learners import Joined, OnlineConfig, UserTowerLearner
    from ip2_stream.online.store import NewsStore, StoreFeatures
    from ip2_stream.stream.mind_events import MindEvents
    from ip2_stream.train.pipeline import new_model, open_workspace

    class Uncached(UserTowerLearner):
        """The first trainer: every step fetches and encodes all of its news again."""

        def _news(self, seqs):
            self.news_changed()
            return super()._news(seqs)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        generate(SynthConfig.from_preset(args.preset, seed=0), tmp / "data")
        model_cfg = IP2Config()
        ws = open_workspace(tmp / "data", ("train",), model_cfg, tmp / "cache")
        init = new_model(ws, model_cfg, 0).eval()
        events = MindEvents(ws.corpus)
        store = NewsStore(Vocab.from_dict(ws.vocab.to_dict()))
        for rec in events.news():
            store.add(rec)
        features = StoreFeatures(store, BottomCache(init.news.title.encoder))
        features.batch(range(len(store)))  # every title's bottom states cached for both runs alike
        n = min(args.impressions, len(ws.corpus.splits["train"]))
        joined = [Joined(*events.impression("train", i)) for i in range(n)]
        cfg = OnlineConfig()
        results = {}
        for name, cls in (("uncached", Uncached), ("cached", UserTowerLearner)):
            torch.manual_seed(0)
            learner = cls(copy.deepcopy(init), features, cfg, seed=0)
            started = time.perf_counter()
            for lo in range(0, n, cfg.user_batch):  # as the trainer does: one learn_many per full buffer
                learner.learn_many(joined[lo : lo + cfg.user_batch])
            seconds = time.perf_counter() - started
            results[name] = {"impressions_per_s": round(n / seconds, 1), "seconds": round(seconds, 2),
                             "steps": learner.steps, "last_loss": learner.last_loss}
            print(f"  {name}: {n / seconds:.1f} impressions/s ({learner.steps} steps, last loss {learner.last_loss:.4f})", flush=True)
    finish("user_trainer", {
        "cached_impressions_per_s": results["cached"]["impressions_per_s"],
        "uncached_impressions_per_s": results["uncached"]["impressions_per_s"],
        "ratio": round(results["cached"]["impressions_per_s"] / results["uncached"]["impressions_per_s"], 3),
        "impressions": n, "user_batch": cfg.user_batch, "runs": results, "peak_rss_mb": round(peak_rss_mb(), 1),
    })


if __name__ == "__main__":
    main()
