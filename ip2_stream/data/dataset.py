"""MIND splits and the in-memory corpus the models and evaluators consume.

A *split* is a folder holding ``news.tsv`` and ``behaviors.tsv`` (MINDsmall_train,
MINDlarge_dev, a synthetic ``train/``...). A *corpus* merges the news of several splits
(one row per news id) and stores each split's impressions as CSR arrays of news indices:

- ``hist_ptr``/``hist_idx``: the click history of impression i is ``hist_idx[hist_ptr[i]:hist_ptr[i+1]]``;
- ``cand_ptr``/``cand_idx``/``labels``: its candidates and their labels (-1 when unlabeled).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ip2_stream.data.cache import load_cached
from ip2_stream.data.mind import (
    BEHAVIORS_SCHEMA,
    ParseResult,
    read_behaviors_tsv,
    read_embedding_vec,
    read_news_tsv,
)
from ip2_stream.data.vocab import Vocab
from ip2_stream.errors import DataError

logger = logging.getLogger(__name__)

TRUTH_FILE = "truth.tsv"
ROLE_SUFFIXES = {"train": "train", "dev": "dev", "valid": "dev", "val": "dev", "test": "test"}


def split_role(path: Path) -> str:
    """``train``, ``dev`` or ``test`` from a folder name like ``MINDsmall_dev`` or ``train``."""
    name = path.name.lower()
    for suffix, role in ROLE_SUFFIXES.items():
        if name == suffix or name.endswith("_" + suffix) or name.endswith("-" + suffix):
            return role
    return name


def is_split_dir(path: Path) -> bool:
    return (path / "news.tsv").is_file() and (path / "behaviors.tsv").is_file()


def find_splits(root: Path | str) -> dict[str, Path]:
    """Split folders under ``root`` (or ``root`` itself), keyed by role, in a stable order."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: no such directory")
    if is_split_dir(root):
        return {split_role(root): root}
    found: dict[str, Path] = {}
    for child in sorted(p for p in root.iterdir() if p.is_dir()):
        if is_split_dir(child):
            role = split_role(child)
            if role in found:
                raise DataError(f"{root}: two folders look like the {role} split: {found[role]} and {child}")
            found[role] = child
    if not found:
        raise DataError(
            f"{root}: no MIND split found (expected news.tsv and behaviors.tsv in it or in its sub-folders)"
        )
    return found


@dataclass
class MindSplit:
    """One split folder, loaded through the Parquet cache.

    Args:
        path: folder with ``news.tsv`` and ``behaviors.tsv``.
        cache_dir: Parquet cache folder (None: the user cache).
        skip_bad: count and skip malformed lines instead of failing.
    """

    path: Path
    cache_dir: Path | None = None
    skip_bad: bool = False
    from_cache: dict[str, bool] = field(default_factory=dict)
    bad_lines: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.path = Path(self.path)
        if not is_split_dir(self.path):
            raise DataError(f"{self.path}: not a MIND split (news.tsv and behaviors.tsv are required)")
        self.role = split_role(self.path)

    def _load(self, filename: str, kind: str, parser) -> ParseResult:
        loaded = load_cached(self.path / filename, kind, parser, self.cache_dir, self.skip_bad)
        self.from_cache[filename] = loaded.from_cache
        self.bad_lines[filename] = loaded.result.bad_lines
        return loaded.result

    def news(self) -> pa.Table:
        return self._load("news.tsv", "news", read_news_tsv).table

    def behaviors(self) -> pa.Table:
        # Parquet has no second-resolution timestamps: cast back to the declared schema
        return self._load("behaviors.tsv", "behaviors", read_behaviors_tsv).table.cast(BEHAVIORS_SCHEMA)

    def entity_embeddings(self) -> pa.Table | None:
        if not (self.path / "entity_embedding.vec").is_file():
            return None
        return self._load("entity_embedding.vec", "entity_vec", read_embedding_vec).table

    def relation_embeddings(self) -> pa.Table | None:
        if not (self.path / "relation_embedding.vec").is_file():
            return None
        return self._load("relation_embedding.vec", "relation_vec", read_embedding_vec).table

    @property
    def has_truth(self) -> bool:
        return (self.path / TRUTH_FILE).is_file()

    def truth(self) -> dict[int, np.ndarray] | None:
        """True click probabilities per impression (synthetic data only), or None."""
        path = self.path / TRUTH_FILE
        if not path.is_file():
            return None
        out: dict[int, np.ndarray] = {}
        with open(path, encoding="utf-8") as handle:
            for lineno, line in enumerate(handle, start=1):
                imp, _, probs = line.rstrip("\n").partition("\t")
                try:
                    out[int(imp)] = np.array(probs.split(), dtype=np.float64)
                except ValueError:
                    raise DataError(f"{path}:{lineno}: expected 'impression_id<TAB>p1 p2 ...'") from None
        return out


@dataclass
class Behaviors:
    """Impressions of one split as CSR arrays over corpus news indices, sorted by time."""

    role: str
    impression_id: np.ndarray  # [I] int64
    user: np.ndarray  # [I] int32 index into Corpus.users
    time: np.ndarray  # [I] int64 seconds
    hist_ptr: np.ndarray  # [I+1] int64
    hist_idx: np.ndarray  # [H] int32
    cand_ptr: np.ndarray  # [I+1] int64
    cand_idx: np.ndarray  # [C] int32
    labels: np.ndarray  # [C] int8, -1 when unlabeled

    def __len__(self) -> int:
        return len(self.impression_id)

    def history(self, i: int) -> np.ndarray:
        return self.hist_idx[self.hist_ptr[i] : self.hist_ptr[i + 1]]

    def candidates(self, i: int) -> np.ndarray:
        return self.cand_idx[self.cand_ptr[i] : self.cand_ptr[i + 1]]

    def candidate_labels(self, i: int) -> np.ndarray:
        return self.labels[self.cand_ptr[i] : self.cand_ptr[i + 1]]

    @property
    def labeled(self) -> bool:
        return bool(len(self.labels)) and bool((self.labels >= 0).all())


@dataclass
class Corpus:
    """News of every loaded split (one row per id) and each split's impressions.

    Build it with :func:`load_corpus`.
    """

    news: pa.Table
    news_index: dict[str, int]
    users: list[str]
    splits: dict[str, Behaviors]
    split_dirs: dict[str, MindSplit]
    entity_vectors: dict[str, np.ndarray]

    @property
    def num_news(self) -> int:
        return self.news.num_rows

    def column(self, name: str) -> list:
        return self.news.column(name).to_pylist()

    def build_vocab(self, roles: tuple[str, ...] = ("train",)) -> Vocab:
        """Vocabulary of the entities, categories and subcategories of news seen in ``roles``.

        News are "seen" in a split when they appear in its histories or candidates.
        """
        mask = np.zeros(self.num_news, dtype=bool)
        for role in roles:
            b = self.splits[role]
            mask[b.hist_idx] = True
            mask[b.cand_idx] = True
        rows = self.news.filter(pa.array(mask))
        entities = pc.list_flatten(rows.column("title_entities")).to_pylist()
        return Vocab.build(
            entities, rows.column("category").to_pylist(), rows.column("subcategory").to_pylist()
        )


def _to_csr(lists: pa.ChunkedArray, index: pa.Array, what: str, split: Path) -> tuple[np.ndarray, np.ndarray]:
    arr = lists.combine_chunks()
    offsets = arr.offsets.to_numpy().astype(np.int64)
    offsets = offsets - offsets[0]
    flat = pc.index_in(arr.flatten(), value_set=index)
    if flat.null_count:
        missing = pc.filter(arr.flatten(), pc.is_null(flat))[0].as_py()
        raise DataError(
            f"{split}: {flat.null_count} {what} reference news missing from news.tsv (e.g. {missing})"
        )
    return offsets, flat.to_numpy(zero_copy_only=False).astype(np.int32)


def load_corpus(
    root: Path | str,
    roles: tuple[str, ...] | None = None,
    cache_dir: Path | None = None,
    skip_bad: bool = False,
) -> Corpus:
    """Load the splits under ``root`` (all of them, or those in ``roles``) into a :class:`Corpus`.

    Args:
        root: a split folder or a folder of split folders.
        roles: which splits to load, e.g. ``("train", "dev")``.
        cache_dir: Parquet cache folder.
        skip_bad: count and skip malformed lines.
    """
    found = find_splits(root)
    if roles is not None:
        missing = [r for r in roles if r not in found]
        if missing:
            raise DataError(f"{root}: missing split(s) {missing}; found {sorted(found)}")
        found = {r: found[r] for r in roles}
    split_dirs = {role: MindSplit(path, cache_dir, skip_bad) for role, path in found.items()}

    news_tables = [s.news() for s in split_dirs.values()]
    news = pa.concat_tables(news_tables)
    ids = news.column("news_id").combine_chunks()
    _, first = np.unique(ids.to_numpy(zero_copy_only=False).astype(str), return_index=True)
    news = news.take(pa.array(np.sort(first)))
    ids = news.column("news_id").combine_chunks()
    news_index = {nid: i for i, nid in enumerate(ids.to_pylist())}

    users: dict[str, int] = {}
    splits: dict[str, Behaviors] = {}
    for role, split in split_dirs.items():
        table = split.behaviors()
        order = np.argsort(table.column("time").to_numpy().astype("int64"), kind="stable")
        table = table.take(pa.array(order))
        hist_ptr, hist_idx = _to_csr(table.column("history"), ids, "history entries", split.path)
        cand_ptr, cand_idx = _to_csr(table.column("candidates"), ids, "candidates", split.path)
        labels = table.column("labels").combine_chunks().flatten().to_numpy().astype(np.int8)
        user_codes = np.array(
            [users.setdefault(u, len(users)) for u in table.column("user_id").to_pylist()], dtype=np.int32
        )
        splits[role] = Behaviors(
            role=role,
            impression_id=table.column("impression_id").to_numpy(),
            user=user_codes,
            time=table.column("time").to_numpy().astype("int64"),
            hist_ptr=hist_ptr,
            hist_idx=hist_idx,
            cand_ptr=cand_ptr,
            cand_idx=cand_idx,
            labels=labels,
        )

    entity_vectors: dict[str, np.ndarray] = {}
    for split in split_dirs.values():
        table = split.entity_embeddings()
        if table is not None and table.num_rows:
            vecs = np.asarray(table.column("vector").combine_chunks().flatten()).reshape(table.num_rows, -1)
            for eid, vec in zip(table.column("id").to_pylist(), vecs):
                entity_vectors.setdefault(eid, vec)
    return Corpus(news, news_index, list(users), splits, split_dirs, entity_vectors)
