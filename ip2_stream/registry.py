"""Model registry: numbered versions of checkpoints, with lineage, promotion and rollback.

A version is a checkpoint folder (``model.safetensors`` + ``manifest.json``) under
``ROOT/versions/vNNNNNN``; ``ROOT/registry.json`` (rewritten atomically) lists every version
with its parent, what changed, metrics at publish time, the publisher's consumer offsets and
when it was published, plus the promoted version and the promotion history (for rollback).

Learners publish *parts*: the SEE updater owns the entity tower (``news.entity.*``), the
user-tower trainer the user towers and gates (``user.*``, ``user_gate.*``, ``cand_gate.*``).
:meth:`Registry.publish` overlays the publisher's part on the latest version, so two learners
never overwrite each other's progress. The vocabulary of the newest publisher wins (it only
grows: ids never change).
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from safetensors.torch import load_file, save_file

from ip2_stream.errors import IP2StreamError
from ip2_stream.model.checkpoint import MANIFEST, WEIGHTS, read_manifest

INDEX = "registry.json"
PARTS: dict[str, tuple[str, ...]] = {
    "entity": ("news.entity.",),
    "user": ("user.", "user_gate.", "cand_gate."),
    "title": ("news.title.",),
}


class RegistryError(IP2StreamError):
    """A version does not exist, or the registry is empty or inconsistent."""


@dataclass(frozen=True)
class VersionInfo:
    version: int
    parent: int | None
    changed: tuple[str, ...]
    path: str
    published: float
    metrics: dict
    offsets: dict
    note: str = ""
    learner_state: tuple[str, ...] = ()  # learners whose state this version's manifest holds


def _atomic_json(path: Path, payload: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}.{threading.get_ident()}")
    tmp.write_text(json.dumps(payload, indent=2, default=str), encoding="utf-8")
    tmp.replace(path)


class Registry:
    """File-backed registry of model versions.

    Args:
        root: folder of the registry (created if missing).

    Example:
        >>> reg = Registry(Path("runs/registry"))                       # doctest: +SKIP
        >>> v = reg.publish(ckpt_dir, changed=("entity",), note="3 new entities")  # doctest: +SKIP
        >>> reg.promote(v); reg.promoted()                              # doctest: +SKIP
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        (self.root / "versions").mkdir(parents=True, exist_ok=True)
        self._thread_lock = threading.Lock()
        with self._lock():
            if not (self.root / INDEX).exists():
                _atomic_json(self.root / INDEX, {"versions": [], "promoted": None, "promotions": []})

    @contextmanager
    def _lock(self):
        """Exclusive across threads and processes (learner actors publish concurrently)."""
        with self._thread_lock, open(self.root / ".lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    # ------------------------------------------------------------------ reading
    def _index(self) -> dict:
        return json.loads((self.root / INDEX).read_text(encoding="utf-8"))

    def versions(self) -> list[VersionInfo]:
        return [VersionInfo(**{**v, "changed": tuple(v["changed"]), "learner_state": tuple(v.get("learner_state", ()))})
                for v in self._index()["versions"]]

    def latest(self) -> VersionInfo | None:
        versions = self.versions()
        return versions[-1] if versions else None

    def get(self, version: int) -> VersionInfo:
        for v in self.versions():
            if v.version == version:
                return v
        raise RegistryError(f"no model version {version} in {self.root}")

    def promoted(self) -> VersionInfo | None:
        number = self._index()["promoted"]
        return self.get(number) if number is not None else None

    # ------------------------------------------------------------------ writing
    def publish_if_empty(self, checkpoint: Path | str, note: str = "") -> int | None:
        """Publish ``checkpoint`` whole and promote it, unless a version exists; returns it or None."""
        with self._lock():
            if self._index()["versions"]:
                return None
            return self._publish(Path(checkpoint), ("all",), None, None, note, True)

    def publish(self, checkpoint: Path | str, changed: tuple[str, ...], metrics: dict | None = None,
                offsets: dict | None = None, note: str = "", promote: bool = False) -> int:
        """Register a new version from a checkpoint folder; returns its number.

        With ``changed`` naming parts (``entity``, ``user``, ``title``), only those tensors are
        taken from ``checkpoint``; everything else comes from the latest version. ``("all",)``
        takes the checkpoint whole.
        """
        unknown = [c for c in changed if c not in PARTS and c != "all"]
        if unknown:
            raise RegistryError(f"unknown model part(s) {unknown}; parts are {sorted(PARTS)} or 'all'")
        with self._lock():
            return self._publish(Path(checkpoint), changed, metrics, offsets, note, promote)

    def _publish(self, checkpoint: Path, changed: tuple[str, ...], metrics: dict | None, offsets: dict | None,
                 note: str, promote: bool) -> int:
        manifest = read_manifest(checkpoint)
        index = self._index()
        latest = index["versions"][-1] if index["versions"] else None
        number = (latest["version"] + 1) if latest else 1
        target = self.root / "versions" / f"v{number:06d}"
        staging = self.root / "versions" / f".staging-v{number:06d}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        state = load_file(str(checkpoint / WEIGHTS))
        if latest is not None and "all" not in changed:
            prefixes = tuple(p for c in changed for p in PARTS[c])
            merged = load_file(str(Path(latest["path"]) / WEIGHTS))
            for key, value in state.items():
                if key.startswith(prefixes) or key not in merged:
                    merged[key] = value
            state = merged
        save_file(state, str(staging / WEIGHTS))
        if latest is not None and "all" not in changed:
            # vocabularies only grow (ids never change): the longer one covers both
            previous = read_manifest(latest["path"])
            if len(previous["vocab"]["tokens"]) > len(manifest["vocab"]["tokens"]):
                manifest = {**manifest, "vocab": previous["vocab"]}
        manifest = {**manifest, "registry_version": number, "registry_parent": latest["version"] if latest else None}
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str), encoding="utf-8")
        staging.replace(target)
        entry = {"version": number, "parent": latest["version"] if latest else None, "changed": list(changed),
                 "path": str(target), "published": time.time(), "metrics": metrics or {}, "offsets": offsets or {},
                 "note": note, "learner_state": sorted(manifest.get("learner_state", {}))}
        index["versions"].append(entry)
        if promote:
            index["promotions"].append(number)
            index["promoted"] = number
        _atomic_json(self.root / INDEX, index)
        return number

    def promote(self, version: int) -> None:
        """Serve ``version`` from now on."""
        self.get(version)
        with self._lock():
            index = self._index()
            index["promotions"].append(version)
            index["promoted"] = version
            _atomic_json(self.root / INDEX, index)

    def prune(self, keep: int) -> list[int]:
        """Delete old versions; returns the numbers deleted.

        Kept: the newest ``keep`` versions, the promoted one and the last ``keep`` promotions
        (what :meth:`rollback` can reach), and each learner's newest version (it holds the
        learner's state). The promotion history keeps only versions that still exist.
        """
        if keep < 1:
            raise RegistryError(f"keep must be at least 1, got {keep}")
        with self._lock():
            index = self._index()
            entries = index["versions"]
            protected = {e["version"] for e in entries[-keep:]} | set(index["promotions"][-keep:])
            if index["promoted"] is not None:
                protected.add(index["promoted"])
            newest_state: dict[str, int] = {}
            for e in entries:
                for role in e.get("learner_state", []):
                    newest_state[role] = e["version"]
            protected |= set(newest_state.values())
            doomed = [e for e in entries if e["version"] not in protected]
            if not doomed:
                return []
            index["versions"] = [e for e in entries if e["version"] in protected]
            index["promotions"] = [v for v in index["promotions"] if v in protected]
            _atomic_json(self.root / INDEX, index)  # the index first: a crash leaves orphan folders, never dangling entries
        for e in doomed:
            shutil.rmtree(e["path"], ignore_errors=True)
        return [e["version"] for e in doomed]

    def rollback(self) -> int:
        """Promote the version promoted before the current one; returns it."""
        with self._lock():
            index = self._index()
            if len(index["promotions"]) < 2:
                raise RegistryError("nothing to roll back to: fewer than two promotions so far")
            index["promotions"].pop()
            index["promoted"] = index["promotions"][-1]
            _atomic_json(self.root / INDEX, index)
            return index["promoted"]
