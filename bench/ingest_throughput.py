"""Click-path ingestion throughput versus a bare kafka-python consumer, same topics, same run.

Produces N impressions and their N click records to the embedded broker, then reads them
twice: (1) a bare ``KafkaConsumer`` that only iterates the messages, (2) the click path of the
user-tower trainer: validating consumer (decode + schema check) -> click join -> training
samples (1 click + 4 in-impression negatives) buffered. Usage:

    python bench/ingest_throughput.py [--events 20000]

Last line: {"pipeline_events_per_s", "raw_consumer_events_per_s", "ratio", ...}; also
bench/results/ingest_throughput.json. An event is one message (impression or click).
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import finish, peak_rss_mb  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20000, help="impressions to send (twice as many messages)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    import numpy as np
    from kafka import KafkaConsumer
    from kafka.structs import TopicPartition

    from ip2_stream.data.dataset import load_corpus
    from ip2_stream.data.synth import SynthConfig, generate
    from ip2_stream.online.learners import ClickJoiner, OnlineConfig, click_rows
    from ip2_stream.stream.broker import EmbeddedBroker
    from ip2_stream.stream.io import RecordProducer, StreamConfig, ValidatingConsumer, ensure_topics
    from ip2_stream.stream.mind_events import MindEvents

    with tempfile.TemporaryDirectory() as tmp:
        generate(SynthConfig.from_preset("small", seed=args.seed), f"{tmp}/data")
        corpus = load_corpus(f"{tmp}/data", ("train",), Path(tmp) / "cache")
        events = MindEvents(corpus)
        broker = EmbeddedBroker(Path(tmp) / "broker")
        state = broker.start()
        try:
            cfg = StreamConfig()
            ensure_topics(cfg, state.bootstrap)
            producer = RecordProducer(state.bootstrap)
            train = corpus.splits["train"]
            n = min(args.events, len(train))
            print(f"producing {2 * n} messages ...", flush=True)
            for i in range(n):
                imp, click = events.impression("train", i)
                producer.send(cfg.topics.impressions, imp.user_id, imp)
                producer.send(cfg.topics.clicks, click.user_id, click)
            producer.flush()
            total = 2 * n
            topics = [cfg.topics.impressions, cfg.topics.clicks]

            # (1) bare consumer
            raw = KafkaConsumer(bootstrap_servers=state.bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
            raw.assign([TopicPartition(t, p) for t in topics for p in range(cfg.topics.partitions)])
            seen, t0 = 0, time.perf_counter()
            while seen < total:
                for batch in raw.poll(timeout_ms=500).values():
                    seen += len(batch)
            raw_s = time.perf_counter() - t0
            raw.close()

            # (2) the click path: validate, join, build the training samples
            consumer = ValidatingConsumer(cfg, state.bootstrap, topics, "bench-pipeline")
            joiner = ClickJoiner(OnlineConfig().join_window_s)
            online = OnlineConfig()
            rng = np.random.default_rng(args.seed)
            seen, buffered, t0 = 0, 0, time.perf_counter()
            while seen < total:
                for c in consumer.poll(timeout_ms=500, max_records=2000):
                    seen += 1
                    joined = joiner.add(c.record)
                    if joined is not None:
                        buffered += len(click_rows([joined], online.negatives, online.history_len, rng))
            pipe_s = time.perf_counter() - t0
            consumer.close()
        finally:
            broker.stop()
    raw_rate, pipe_rate = total / raw_s, total / pipe_s
    print(f"raw consumer {raw_rate:.0f} msg/s, click path {pipe_rate:.0f} msg/s ({buffered} samples buffered)", flush=True)
    finish("ingest_throughput", {
        "pipeline_events_per_s": round(pipe_rate, 1), "raw_consumer_events_per_s": round(raw_rate, 1),
        "ratio": round(pipe_rate / raw_rate, 3), "messages": total, "samples_buffered": buffered,
        "peak_rss_mb": round(peak_rss_mb(), 1),
    })


if __name__ == "__main__":
    main()
