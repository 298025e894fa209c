"""Start, inspect and stop the live loop's actors on a Ray cluster (``ip2-stream stream up|status|down``).

Actors are named and detached in the ``ip2-stream`` namespace, so ``status`` and ``down``
from another process find them. Ray restarts a crashed actor; its constructor restores state.
"""

from __future__ import annotations

import logging
import os
import time

# Ray reads this when imported: with it, a local cluster keeps every port on loopback
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import ray  # noqa: E402

from actors.learners import RegistryActor, SEEUpdaterActor, UserTowerTrainerActor  # noqa: E402
from actors.news_ingestor import NewsIngestorActor  # noqa: E402
from ip2_stream.online.live import LiveConfig, bootstrap_registry  # noqa: E402
from ip2_stream.stream.io import ensure_topics  # noqa: E402

logger = logging.getLogger(__name__)
NAMESPACE = "ip2-stream"
NAMES = {"registry": "ip2-registry", "ingestor": "ip2-news-ingestor", "see": "ip2-see-updater", "trainer": "ip2-user-trainer"}


def connect(address: str | None = None) -> None:
    """Join the Ray cluster at ``address`` (or start a local one) in the project's namespace."""
    if ray.is_initialized():
        return
    if address:
        ray.init(address=address, namespace=NAMESPACE, log_to_driver=False)
    else:
        ray.init(namespace=NAMESPACE, include_dashboard=False, log_to_driver=False, num_cpus=max(2, os.cpu_count() or 2))


def _handle(name: str):
    try:
        return ray.get_actor(NAMES[name], namespace=NAMESPACE)
    except ValueError:
        return None


def up(cfg: LiveConfig, detached: bool = True) -> dict:
    """Create the topics and the four actors (reusing any that already run); returns their handles.

    Keep the handles when ``detached`` is False: such actors die with their last handle.
    """
    ensure_topics(cfg.stream, cfg.bootstrap)
    bootstrap_registry(cfg)  # version 1 exists before any learner starts
    lifetime = "detached" if detached else None
    opts = {"namespace": NAMESPACE, "lifetime": lifetime, "get_if_exists": True}
    registry = RegistryActor.options(name=NAMES["registry"], **opts).remote(cfg)
    ingestor = NewsIngestorActor.options(name=NAMES["ingestor"], **opts).remote(cfg)
    ray.get(ingestor.status.remote())  # constructed: the store exists before the learners read it
    see = SEEUpdaterActor.options(name=NAMES["see"], **opts).remote(cfg, ingestor)
    trainer = UserTowerTrainerActor.options(name=NAMES["trainer"], **opts).remote(cfg, ingestor)
    ray.get([registry.latest.remote(), see.status.remote(), trainer.status.remote()])
    return {"registry": registry, "ingestor": ingestor, "see": see, "trainer": trainer}


def handles() -> dict:
    return {k: _handle(k) for k in NAMES}


def status() -> dict:
    """Versions, lag per topic and last update times of every running actor."""
    out: dict = {}
    for key, h in handles().items():
        if h is None:
            out[key] = None
            continue
        try:
            if key == "registry":
                latest, promoted = ray.get([h.latest.remote(), h.promoted.remote()], timeout=10)
                out[key] = {"latest": latest and {k: latest[k] for k in ("version", "changed", "published", "note")},
                            "promoted": promoted and promoted["version"]}
            else:
                out[key] = ray.get(h.status.remote(), timeout=10)
        except Exception as exc:  # an actor restarting or dead: report it, keep going
            out[key] = {"error": f"{type(exc).__name__}: {exc}"}
    out["checked_at"] = time.time()
    return out


def down() -> list[str]:
    """Stop every actor (after a last snapshot where possible); returns the names stopped."""
    stopped = []
    running = handles()
    for key in ("trainer", "see", "ingestor", "registry"):  # the learners' last step reads the ingestor
        h = running[key]
        if h is None:
            continue
        if key != "registry":
            try:
                ray.get(h.stop.remote(), timeout=30)
            except Exception as exc:
                logger.warning("%s did not stop cleanly: %s", key, exc)
        ray.kill(h, no_restart=True)
        stopped.append(NAMES[key])
    return stopped
