"""Readers for the MIND files, exactly as Microsoft ships them.

- ``news.tsv``: 8 tab-separated columns, quoting disabled (titles contain ``"``), entity
  columns are JSON lists (``[]`` or empty when there are none).
- ``behaviors.tsv``: impression id, user id, ``M/D/YYYY h:mm:ss AM`` time, space-separated
  history (may be empty), candidates ``Nxxx-1``/``Nxxx-0`` (bare ``Nxxx`` in the test split).
- ``entity_embedding.vec`` / ``relation_embedding.vec``: an id then the vector, tab separated,
  trailing tabs allowed.

A malformed line raises :class:`MalformedLineError` (file, line, reason) unless
``skip_bad=True``, in which case it is counted and skipped; the count travels with the
table (``ParseResult.bad_lines``) and is never silently lost.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa

from ip2_stream.errors import MalformedLineError

logger = logging.getLogger(__name__)

NEWS_COLUMNS = (
    "news_id",
    "category",
    "subcategory",
    "title",
    "abstract",
    "url",
    "title_entities",
    "abstract_entities",
)
UNLABELED = -1
#: bump when a parser's output changes, so cached Parquet files are rebuilt
PARSER_VERSION = 1

NEWS_SCHEMA = pa.schema(
    [
        ("news_id", pa.string()),
        ("category", pa.string()),
        ("subcategory", pa.string()),
        ("title", pa.string()),
        ("abstract", pa.string()),
        ("url", pa.string()),
        ("title_entities", pa.list_(pa.string())),
        ("title_entity_labels", pa.list_(pa.string())),
        ("abstract_entities", pa.list_(pa.string())),
    ]
)
BEHAVIORS_SCHEMA = pa.schema(
    [
        ("impression_id", pa.int64()),
        ("user_id", pa.string()),
        ("time", pa.timestamp("s")),
        ("history", pa.list_(pa.string())),
        ("candidates", pa.list_(pa.string())),
        ("labels", pa.list_(pa.int8())),
    ]
)


class _Bad(Exception):
    """A line-level parse failure; the reader turns it into an error or a skip."""


@dataclass
class ParseResult:
    """A parsed file: the table plus what was skipped (only with ``skip_bad``)."""

    table: pa.Table
    bad_lines: int = 0
    bad_examples: list[str] = field(default_factory=list)


# ---------------------------------------------------------------------------------------
# line parsers
# ---------------------------------------------------------------------------------------
def _parse_entities(raw: str, column: str) -> tuple[list[str], list[str]]:
    """WikidataIds and labels of one entity column, in order of first occurrence in the text."""
    raw = raw.strip()
    if not raw or raw == "[]":
        return [], []
    try:
        items = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise _Bad(f"{column} is not valid JSON ({exc.msg} at char {exc.pos})") from None
    if not isinstance(items, list):
        raise _Bad(f"{column} must be a JSON list, got {type(items).__name__}")
    keyed: list[tuple[int, int, str, str]] = []
    for pos, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("WikidataId"), str):
            raise _Bad(f"{column}[{pos}] has no string WikidataId")
        offsets = item.get("OccurrenceOffsets") or []
        first = min(offsets) if offsets and all(isinstance(o, int) for o in offsets) else 1 << 30
        keyed.append((first, pos, item["WikidataId"], str(item.get("Label", ""))))
    keyed.sort()
    ids, labels, seen = [], [], set()
    for _, _, wid, label in keyed:
        if wid not in seen:
            seen.add(wid)
            ids.append(wid)
            labels.append(label)
    return ids, labels


def _parse_news_line(line: str) -> tuple:
    parts = line.split("\t")
    if len(parts) != len(NEWS_COLUMNS):
        raise _Bad(f"expected {len(NEWS_COLUMNS)} tab-separated columns, found {len(parts)}")
    news_id, category, subcategory, title, abstract, url, t_ent, a_ent = parts
    if not news_id:
        raise _Bad("empty news id")
    if not category:
        raise _Bad("empty category")
    title_ids, title_labels = _parse_entities(t_ent, "title_entities")
    abstract_ids, _ = _parse_entities(a_ent, "abstract_entities")
    return (news_id, category, subcategory, title, abstract, url, title_ids, title_labels, abstract_ids)


_MONTH_DAY_CACHE: dict[tuple[int, int, int], int] = {}


def parse_mind_time(text: str) -> int:
    """Seconds since the epoch (naive times read as UTC) of ``M/D/YYYY h:mm:ss AM``.

    Example:
        >>> parse_mind_time("11/15/2019 8:55:22 AM")
        1573808122
    """
    try:
        date, clock, half = text.split(" ")
        month, day, year = (int(x) for x in date.split("/"))
        hour, minute, second = (int(x) for x in clock.split(":"))
    except ValueError:
        raise _Bad(f"time {text!r} is not M/D/YYYY h:mm:ss AM|PM") from None
    if half not in ("AM", "PM") or not (1 <= hour <= 12 and 0 <= minute < 60 and 0 <= second < 61):
        raise _Bad(f"time {text!r} is not M/D/YYYY h:mm:ss AM|PM")
    key = (year, month, day)
    midnight = _MONTH_DAY_CACHE.get(key)
    if midnight is None:
        try:
            midnight = int(datetime(year, month, day, tzinfo=timezone.utc).timestamp())
        except ValueError:
            raise _Bad(f"time {text!r} has an invalid date") from None
        _MONTH_DAY_CACHE[key] = midnight
    hour = hour % 12 + (12 if half == "PM" else 0)
    return midnight + hour * 3600 + minute * 60 + second


def format_mind_time(seconds: int) -> str:
    """Inverse of :func:`parse_mind_time`."""
    dt = datetime.fromtimestamp(int(seconds), tz=timezone.utc)
    hour12 = dt.hour % 12 or 12
    half = "AM" if dt.hour < 12 else "PM"
    return f"{dt.month}/{dt.day}/{dt.year} {hour12}:{dt.minute:02d}:{dt.second:02d} {half}"


def _parse_behaviors_line(line: str) -> tuple:
    parts = line.split("\t")
    if len(parts) != 5:
        raise _Bad(f"expected 5 tab-separated columns, found {len(parts)}")
    imp_raw, user_id, time_raw, history_raw, cands_raw = parts
    try:
        impression_id = int(imp_raw)
    except ValueError:
        raise _Bad(f"impression id {imp_raw!r} is not an integer") from None
    if not user_id:
        raise _Bad("empty user id")
    seconds = parse_mind_time(time_raw)
    history = history_raw.split()
    tokens = cands_raw.split()
    if not tokens:
        raise _Bad("no candidates")
    candidates: list[str] = []
    labels: list[int] = []
    for tok in tokens:
        news_id, dash, label = tok.rpartition("-")
        if dash and label in ("0", "1") and news_id:
            candidates.append(news_id)
            labels.append(int(label))
        elif "-" not in tok:
            candidates.append(tok)
            labels.append(UNLABELED)
        else:
            raise _Bad(f"candidate {tok!r} is not Nxxx-0, Nxxx-1 or a bare news id")
    if UNLABELED in labels and any(lbl != UNLABELED for lbl in labels):
        raise _Bad("mixes labeled and unlabeled candidates")
    return (impression_id, user_id, seconds, history, candidates, labels)


# ---------------------------------------------------------------------------------------
# file readers
# ---------------------------------------------------------------------------------------
def _iter_lines(path: Path) -> Iterator[tuple[int, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        for lineno, line in enumerate(handle, start=1):
            line = line.rstrip("\r\n")
            if line:
                yield lineno, line


def _read_rows(
    path: Path,
    parse: Callable[[str], tuple],
    skip_bad: bool,
    check: Callable[[tuple, int], None] | None = None,
) -> tuple[list[tuple], int, list[str]]:
    rows: list[tuple] = []
    bad, examples = 0, []
    for lineno, line in _iter_lines(path):
        try:
            row = parse(line)
            if check is not None:
                check(row, lineno)
        except _Bad as exc:
            if not skip_bad:
                raise MalformedLineError(path, lineno, str(exc)) from None
            bad += 1
            if len(examples) < 5:
                examples.append(f"{path.name}:{lineno}: {exc}")
            continue
        rows.append(row)
    if bad:
        logger.warning("%s: skipped %d malformed line(s), e.g. %s", path, bad, examples[0])
    return rows, bad, examples


def _columns(rows: list[tuple], width: int) -> list[list]:
    return [list(col) for col in zip(*rows)] if rows else [[] for _ in range(width)]


def read_news_tsv(path: Path | str, skip_bad: bool = False) -> ParseResult:
    """Parse ``news.tsv`` into a table with :data:`NEWS_SCHEMA`."""
    path = Path(path)
    first_line: dict[str, int] = {}

    def unique(row: tuple, lineno: int) -> None:
        prev = first_line.setdefault(row[0], lineno)
        if prev != lineno:
            raise _Bad(f"duplicate news id {row[0]} (first on line {prev})")

    rows, bad, examples = _read_rows(path, _parse_news_line, skip_bad, unique)
    table = pa.Table.from_arrays(
        [pa.array(col, type=f.type) for col, f in zip(_columns(rows, len(NEWS_SCHEMA)), NEWS_SCHEMA)],
        schema=NEWS_SCHEMA,
    )
    return ParseResult(table, bad, examples)


def read_behaviors_tsv(path: Path | str, skip_bad: bool = False) -> ParseResult:
    """Parse ``behaviors.tsv`` into a table with :data:`BEHAVIORS_SCHEMA` (labels -1 if unlabeled)."""
    path = Path(path)
    rows, bad, examples = _read_rows(path, _parse_behaviors_line, skip_bad)
    cols = _columns(rows, len(BEHAVIORS_SCHEMA))
    cols[2] = np.asarray(cols[2], dtype="datetime64[s]")
    table = pa.Table.from_arrays(
        [pa.array(col, type=f.type) for col, f in zip(cols, BEHAVIORS_SCHEMA)], schema=BEHAVIORS_SCHEMA
    )
    return ParseResult(table, bad, examples)


def read_embedding_vec(path: Path | str, skip_bad: bool = False) -> ParseResult:
    """Parse an ``*_embedding.vec`` file into a table ``(id: string, vector: list<float32>)``.

    The dimension is taken from the first valid line; every other line must match it.
    """
    path = Path(path)
    dim: list[int] = []

    def parse(line: str) -> tuple:
        parts = line.rstrip("\t ").split("\t")
        if len(parts) < 2 or not parts[0]:
            raise _Bad("expected an id followed by tab-separated floats")
        try:
            vec = [float(x) for x in parts[1:]]
        except ValueError:
            raise _Bad("vector holds a value that is not a number") from None
        if not dim:
            dim.append(len(vec))
        elif len(vec) != dim[0]:
            raise _Bad(f"vector has {len(vec)} values, expected {dim[0]}")
        return parts[0], vec

    rows, bad, examples = _read_rows(path, parse, skip_bad)
    ids, vecs = _columns(rows, 2)
    width = dim[0] if dim else 0
    values = pa.array(np.asarray(vecs, dtype=np.float32).reshape(-1), type=pa.float32())
    table = pa.table(
        {
            "id": pa.array(ids, type=pa.string()),
            "vector": pa.FixedSizeListArray.from_arrays(values, width) if width else pa.array([], pa.list_(pa.float32(), 0)),
        }
    )
    return ParseResult(table, bad, examples)
