"""The real components the gateway starts when it is not given them: PostgreSQL and the Cerbos PDP.

`DATABASE_URL` unset -> an embedded PostgreSQL from the `pgserver` package in a project-local folder.
`CERBOS_URL` unset -> the pinned Cerbos binary (npm package `cerbos`) serving `policies/` from disk,
reloading on change, supervised: when it exits for any reason it is reaped and started again on the same
ports, with a backoff that grows while it keeps failing. Whatever was started here is stopped by
`Components.stop()`.
The Go binary is started directly, not through the npm Node wrapper, because stopping the wrapper
leaves the server running.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from gateway.config import Settings

EMBEDDED_DATABASE = "akson"
_PR_SET_PDEATHSIG = 1
# Restarts of the PDP: the first at once, then doubling up to the ceiling while it keeps exiting within
# `RESTART_STABLE_SECONDS` of its start; a run that long resets the backoff.
RESTART_FIRST_DELAY = 0.1
RESTART_MAX_DELAY = 10.0
RESTART_STABLE_SECONDS = 30.0

log = logging.getLogger(__name__)


class ComponentError(RuntimeError):
    """A component could not be started; the message says what to do about it."""


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_embedded_postgres(pgdata: Path) -> tuple[str, Callable[[], None]]:
    """Start (or join) the embedded server and return its URL and a stop function."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        import pgserver

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
    return str(server.get_uri(EMBEDDED_DATABASE)), server.cleanup


def _die_with_parent() -> None:
    """In the child: ask Linux to SIGTERM it when the gateway dies, even by SIGKILL."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class CerbosProcess:
    """A Cerbos PDP child process with its own config file and loopback ports."""

    binary: Path
    policy_dir: Path
    work_dir: Path
    grpc_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    _stopping: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _supervisor: threading.Thread | None = None

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def config_text(self) -> str:
        """Cerbos configuration: disk store with hot reload, schema enforcement, no telemetry or
        decision log (the decision log would copy patient attributes; our audit log is the record)."""
        return "\n".join(
            [
                "server:",
                f'  httpListenAddr: "127.0.0.1:{self.http_port}"',
                f'  grpcListenAddr: "127.0.0.1:{self.grpc_port}"',
                "  requestLimits:",
                "    maxActionsPerResource: 50",
                "    maxResourcesPerRequest: 500",
                "storage:",
                "  driver: disk",
                "  disk:",
                f'    directory: "{self.policy_dir}"',
                "    watchForChanges: true",
                "schema:",
                "  enforcement: reject",
                "engine:",
                "  lenientScopeSearch: true",
                "telemetry:",
                "  disabled: true",
                "audit:",
                "  enabled: false",
                "",
            ]
        )

    def start(self, timeout: float = 20.0) -> None:
        """Start the PDP, wait until it reports healthy, and keep it running until `stop()`."""
        if not self.binary.exists():
            raise ComponentError(
                f"Cerbos binary not found at {self.binary}; run `npm ci` in the project (make does this)"
            )
        self.work_dir.mkdir(parents=True, exist_ok=True)
        (self.work_dir / "cerbos.yaml").write_text(self.config_text())
        self._spawn()
        self._wait_healthy(timeout)
        self._supervisor = threading.Thread(target=self._supervise, name="cerbos-supervisor", daemon=True)
        self._supervisor.start()

    def _spawn(self) -> None:
        with (self.work_dir / "cerbos.log").open("ab") as output:
            self.process = subprocess.Popen(
                [str(self.binary), "server", f"--config={self.work_dir / 'cerbos.yaml'}", "--log-level=warn"],
                stdout=output,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                preexec_fn=_die_with_parent,
            )

    def _supervise(self) -> None:
        """Wait for the PDP to exit (which reaps it) and start it again, until `stop()`."""
        delay = RESTART_FIRST_DELAY
        while not self._stopping.is_set():
            process = self.process
            assert process is not None
            started = time.monotonic()
            code = process.wait()
            if self._stopping.is_set():
                return
            if time.monotonic() - started >= RESTART_STABLE_SECONDS:
                delay = RESTART_FIRST_DELAY
            log.error("the Cerbos PDP exited (code %s); starting it again in %.1fs", code, delay)
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, RESTART_MAX_DELAY)
            with self._lock:
                if self._stopping.is_set():
                    return
                self.restarts += 1
                try:
                    self._spawn()
                except OSError as exc:
                    log.error("the Cerbos PDP could not be started again: %s", exc)

    def _wait_healthy(self, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        url = f"http://127.0.0.1:{self.http_port}/_cerbos/health"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ComponentError(f"Cerbos exited at start-up; see {self.work_dir / 'cerbos.log'}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=1.0).json().get("status") == "SERVING":
                    return
            time.sleep(0.1)
        self.stop()
        raise ComponentError(f"Cerbos did not become healthy in {timeout:.0f}s")

    def stop(self) -> None:
        """Stop supervising and stop the PDP; waits briefly, then kills."""
        with self._lock:
            self._stopping.set()
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


@dataclass
class Components:
    """The database URL and Cerbos target in use, and how to stop what was started for them."""

    database_url: str
    cerbos_target: str
    _stops: list[Callable[[], None]] = field(default_factory=list)

    def stop(self) -> None:
        """Stop started components in reverse order."""
        while self._stops:
            stop = self._stops.pop()
            with contextlib.suppress(Exception):
                stop()


def start_database(settings: Settings) -> tuple[str, Callable[[], None] | None]:
    """`DATABASE_URL` when set, else the embedded server (started here)."""
    if settings.database_url:
        return settings.database_url, None
    url, stop = start_embedded_postgres(settings.embedded_pgdata)
    return url, stop


def start_components(settings: Settings, *, with_cerbos: bool = True, pdp_dir: str = "cerbos") -> Components:
    """Start what the settings do not point at, so that `akson serve` (or a command beside it, with its own
    `pdp_dir` under the data folder) needs nothing else running."""
    url, stop_db = start_database(settings)
    components = Components(database_url=url, cerbos_target=settings.cerbos_url or "")
    if stop_db:
        components._stops.append(stop_db)
    if with_cerbos and not settings.cerbos_url:
        pdp = CerbosProcess(settings.cerbos_binary, settings.policy_dir, settings.data_dir / pdp_dir)
        try:
            pdp.start()
        except Exception:
            components.stop()
            raise
        components._stops.append(pdp.stop)
        components.cerbos_target = pdp.grpc_target
    return components
