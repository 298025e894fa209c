"""A growable token vocabulary for entities, categories and subcategories.

Id 0 is padding. When built from a corpus, entities take the first range, then categories,
then subcategories (each kind its own range, no collisions). At run time new tokens, above
all brand-new entities from the news stream, are appended: existing ids never change, so
rows of an embedding table indexed by these ids stay valid while the table grows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

Kind = Literal["entity", "category", "subcategory"]
KINDS: tuple[Kind, ...] = ("entity", "category", "subcategory")
PAD_ID = 0
_FORMAT = "ip2-stream/vocab"
_VERSION = 1


class Vocab:
    """Token vocabulary mapping ``(kind, key)`` to a stable integer id.

    Example:
        >>> v = Vocab()
        >>> v.add("entity", "Q42")
        1
        >>> v.encode_news("sports", "golf", ["Q42", "Q7"], grow=True)
        [2, 3, 1, 4]
    """

    def __init__(self) -> None:
        self._tokens: list[tuple[str, str]] = [("pad", "")]
        self._index: dict[tuple[str, str], int] = {}

    # -- building -----------------------------------------------------------------------
    @classmethod
    def build(
        cls,
        entities: Iterable[str],
        categories: Iterable[str],
        subcategories: Iterable[str],
    ) -> Vocab:
        """Vocabulary with entities, then categories, then subcategories (sorted, deduplicated)."""
        vocab = cls()
        for kind, keys in zip(KINDS, (entities, categories, subcategories)):
            for key in sorted(set(keys)):
                vocab.add(kind, key)
        return vocab

    def add(self, kind: Kind, key: str) -> int:
        """Id of ``(kind, key)``, appending a new id if it is not known yet."""
        if kind not in KINDS:
            raise ValueError(f"unknown token kind {kind!r}; expected one of {KINDS}")
        if not key:
            raise ValueError(f"empty {kind} key")
        token = (kind, key)
        found = self._index.get(token)
        if found is not None:
            return found
        new_id = len(self._tokens)
        self._tokens.append(token)
        self._index[token] = new_id
        return new_id

    def add_many(self, kind: Kind, keys: Iterable[str]) -> list[str]:
        """Add every key; return the keys that were new, in order of first appearance."""
        new: list[str] = []
        for key in keys:
            if (kind, key) not in self._index:
                self.add(kind, key)
                new.append(key)
        return new

    # -- lookup -------------------------------------------------------------------------
    def get(self, kind: Kind, key: str) -> int | None:
        return self._index.get((kind, key))

    def __contains__(self, token: tuple[str, str]) -> bool:
        return token in self._index

    def __len__(self) -> int:
        """Number of ids including padding: the row count an embedding table needs."""
        return len(self._tokens)

    def token(self, token_id: int) -> tuple[str, str]:
        return self._tokens[token_id]

    def count(self, kind: Kind) -> int:
        return sum(1 for k, _ in self._tokens if k == kind)

    def encode_news(
        self,
        category: str,
        subcategory: str,
        entities: Sequence[str],
        max_entities: int = 16,
        grow: bool = False,
    ) -> list[int]:
        """The SEE input ``[category, subcategory, e1 ... en]`` of one news item.

        Unknown entities are dropped unless ``grow`` is set, in which case they get new ids.
        Repeated entities keep their first position; at most ``max_entities`` are kept.

        Args:
            category: MIND category.
            subcategory: MIND subcategory.
            entities: WikidataIds in title order.
            max_entities: cap on entities kept.
            grow: add unknown tokens instead of dropping them.
        """
        lookup = self.add if grow else self.get
        ids: list[int] = []
        for kind, key in (("category", category), ("subcategory", subcategory)):
            tid = lookup(kind, key)  # type: ignore[arg-type]
            ids.append(PAD_ID if tid is None else tid)
        seen: set[int] = set()
        for key in entities:
            if len(seen) >= max_entities:
                break
            tid = lookup("entity", key)
            if tid is not None and tid not in seen:
                seen.add(tid)
                ids.append(tid)
        return ids

    # -- persistence --------------------------------------------------------------------
    def tail(self, start: int) -> list[tuple[str, str]]:
        """Tokens with ids ``start`` and up, in id order (what a copy of length ``start`` lacks)."""
        return list(self._tokens[max(start, 1):])

    def extend(self, tokens: Iterable[Sequence[str]]) -> None:
        """Append ``tokens`` as :meth:`tail` returned them from a vocabulary this one is a prefix of."""
        for kind, key in tokens:
            if (kind, key) in self._index:
                raise ValueError(f"({kind!r}, {key!r}) is already id {self._index[(kind, key)]}: not a tail of this vocabulary")
            self.add(kind, key)

    def to_dict(self) -> dict:
        return {"format": _FORMAT, "version": _VERSION, "tokens": [list(t) for t in self._tokens[1:]]}

    @classmethod
    def from_dict(cls, payload: dict) -> Vocab:
        if payload.get("format") != _FORMAT or payload.get("version") != _VERSION:
            raise ValueError(
                f"not an ip2-stream vocabulary (format={payload.get('format')!r}, "
                f"version={payload.get('version')!r})"
            )
        vocab = cls()
        for kind, key in payload["tokens"]:
            vocab.add(kind, key)
        return vocab

    def save(self, path: Path | str) -> None:
        Path(path).write_text(json.dumps(self.to_dict()), encoding="utf-8")

    @classmethod
    def load(cls, path: Path | str) -> Vocab:
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self._tokens == other._tokens

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={self.count(k)}" for k in KINDS)
        return f"Vocab({counts})"
