"""A loopback device fleet: TVM's RPC tracker and rpc_servers on free local ports, stopped without fail.

Each process runs in its own process group, because the tracker and the
servers do their work in ``tvm.exec.popen_worker`` children that a plain
kill of the parent leaves behind. Ports are polled, never slept on: on a
busy 2-core machine the servers take seconds to import TVM.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def _start(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", *args], stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True, env={**os.environ, **(env or {})})


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group, SIGKILL what is left after 5 s."""
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # children of a parent that exited on SIGTERM


@dataclass
class Fleet:
    folder: Path
    tracker_port: int = 0
    tracker: subprocess.Popen[bytes] | None = None
    servers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.tracker_port}"

    def start_tracker(self, timeout: float = 120) -> None:
        self.tracker_port = free_port()
        self.tracker = _start(["tvm.exec.rpc_tracker", "--host", "127.0.0.1", "--port", str(self.tracker_port),
                               "--port-end", str(self.tracker_port + 1)], self.folder / "tracker.log")
        deadline = time.monotonic() + timeout
        while not listening(self.tracker_port):
            if self.tracker.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the tracker did not start: {(self.folder / 'tracker.log').read_text()[-2000:]}")
            time.sleep(0.2)

    def start_server(self, name: str, key: str = "box", threads: int = 2) -> None:
        port = free_port()
        self.ports[name] = port
        self.servers[name] = _start(["tvm.exec.rpc_server", "--host", "127.0.0.1", "--port", str(port),
                                     "--port-end", str(port + 1), "--tracker", self.address, "--key", key],
                                    self.folder / f"server-{name}.log", {"TVM_NUM_THREADS": str(threads)})

    def wait_registered(self, key: str, count: int, timeout: float = 180) -> None:
        """Poll the tracker until ``count`` servers of ``key`` are free."""
        from tvm import rpc

        deadline = time.monotonic() + timeout
        free = -1
        while time.monotonic() < deadline:
            for name, proc in self.servers.items():
                if proc.poll() is not None:
                    log = (self.folder / f"server-{name}.log").read_text()[-2000:]
                    raise RuntimeError(f"rpc_server {name} exited: {log}")
            with contextlib.suppress(OSError, RuntimeError):
                session = rpc.connect_tracker("127.0.0.1", self.tracker_port)
                free = int(session.summary()["queue_info"].get(key, {}).get("free", 0))
                session.close()
                if free >= count:
                    return
            time.sleep(0.5)
        raise RuntimeError(f"only {free} of {count} servers with key {key!r} registered in {timeout:g} s")

    def kill_server(self, name: str) -> None:
        stop(self.servers.pop(name))

    def close(self) -> list[int]:
        """Stop everything; return the ports still listening (there should be none)."""
        for proc in [*self.servers.values(), *([self.tracker] if self.tracker else [])]:
            stop(proc)
        ports = [self.tracker_port, *self.ports.values()]
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(listening(p) for p in ports if p):
            time.sleep(0.2)
        return [p for p in ports if p and listening(p)]


@contextlib.contextmanager
def fleet(folder: Path, servers: int = 2, key: str = "box") -> Iterator[Fleet]:
    """A tracker and ``servers`` rpc_servers of ``key``, all stopped on exit, pass or fail."""
    f = Fleet(folder)
    try:
        f.start_tracker()
        for i in range(servers):
            f.start_server(f"s{i}", key)
        if servers:
            f.wait_registered(key, servers)
        yield f
    finally:
        left = f.close()
        assert not left, f"still listening after the fleet stopped: {left}"
