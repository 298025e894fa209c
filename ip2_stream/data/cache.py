"""Parse-once Parquet cache for MIND text files.

A cached table is keyed by the source file's absolute path, size and modification time,
the parser version and the parse options; a re-run on unchanged inputs reads Parquet and
does no parsing. The count of skipped malformed lines is stored in the Parquet metadata so a
cached load reports exactly what the original parse did.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from ip2_stream.data.mind import PARSER_VERSION, ParseResult

logger = logging.getLogger(__name__)
_META_KEY = b"ip2_stream"


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ip2-stream" / "parquet"


@dataclass(frozen=True)
class CachedLoad:
    """A table and where it came from."""

    result: ParseResult
    from_cache: bool
    cache_path: Path


def _cache_key(source: Path, kind: str, options: dict) -> str:
    stat = source.stat()
    payload = json.dumps(
        [str(source.resolve()), stat.st_size, stat.st_mtime_ns, kind, PARSER_VERSION, options],
        sort_keys=True,
    )
    return hashlib.sha1(payload.encode()).hexdigest()[:20]


def load_cached(
    source: Path,
    kind: str,
    parse: Callable[[Path, bool], ParseResult],
    cache_dir: Path | None,
    skip_bad: bool,
) -> CachedLoad:
    """Table of ``source``, from the Parquet cache when it is fresh, else parsed and cached.

    Args:
        source: the text file.
        kind: a short name for the parser (``news``, ``behaviors``, ``entity_vec``...).
        parse: ``parse(path, skip_bad) -> ParseResult``.
        cache_dir: where Parquet files live (default: :func:`default_cache_dir`).
        skip_bad: forwarded to the parser and part of the cache key.
    """
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    key = _cache_key(source, kind, {"skip_bad": skip_bad})
    target = cache_dir / f"{kind}-{source.parent.name}-{key}.parquet"
    if target.exists():
        try:
            table = pq.read_table(target)
            meta = json.loads((table.schema.metadata or {}).get(_META_KEY, b"{}"))
            table = table.replace_schema_metadata(None)
            return CachedLoad(
                ParseResult(table, meta.get("bad_lines", 0), meta.get("bad_examples", [])),
                True,
                target,
            )
        except Exception as exc:  # a corrupt cache entry is rebuilt, never trusted
            logger.warning("ignoring unreadable cache file %s (%s)", target, exc)
    logger.info("parsing %s", source)
    result = parse(source, skip_bad)
    cache_dir.mkdir(parents=True, exist_ok=True)
    meta = json.dumps({"bad_lines": result.bad_lines, "bad_examples": result.bad_examples})
    tmp = target.with_suffix(f".tmp{os.getpid()}")
    pq.write_table(result.table.replace_schema_metadata({_META_KEY: meta.encode()}), tmp)
    tmp.replace(target)
    return CachedLoad(result, False, target)
