"""MIND-format data: parsing, Parquet cache, vocabulary and the synthetic generator."""
