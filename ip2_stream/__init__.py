"""ip2-stream: a streaming, incrementally learning news recommender built around IP2."""

__version__ = "0.1.0"
