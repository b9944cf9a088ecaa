"""Remote devices through TVM's RPC tracker: reach a device pool, hold a session, describe the device.

The harness builds on the host and measures on the device, the way TVM's
own tools (tvmc ``--rpc-tracker``, MetaSchedule's ``RPCRunner``) do. Every
way this can go wrong gets one line that names the target and the address,
and nothing waits forever: the tracker connection has ``connect_timeout``,
the wait for a free device ``queue_timeout``, the session itself the
server-side ``session_timeout``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bench.errors import RemoteError
from bench.suite.schema import parse_address

if TYPE_CHECKING:
    from bench.suite.schema import RpcSpec
    from bench.suite.target import ResolvedTarget

TRACKER_HOST_ENV = "TVM_TRACKER_HOST"
TRACKER_PORT_ENV = "TVM_TRACKER_PORT"


@dataclass(frozen=True)
class Tracker:
    host: str
    port: int
    #: Where the address came from, for error messages.
    source: str

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def tracker_address(rpc: RpcSpec, override: str | None, where: str, key: str) -> Tracker:
    """``--bench-rpc-tracker`` wins, then ``TVM_TRACKER_HOST``/``TVM_TRACKER_PORT``, then ``rpc.tracker``."""
    if override:
        try:
            return Tracker(*parse_address(override), "--bench-rpc-tracker")
        except ValueError as err:
            raise RemoteError(f"--bench-rpc-tracker: {err}", where, key) from None
    host, port = os.environ.get(TRACKER_HOST_ENV), os.environ.get(TRACKER_PORT_ENV)
    if host or port:
        if not (host and port and port.isdigit()):
            raise RemoteError(f"{TRACKER_HOST_ENV}={host!r} and {TRACKER_PORT_ENV}={port!r}: set both, the port "
                              "as a number", where, key)
        return Tracker(host, int(port), f"{TRACKER_HOST_ENV}/{TRACKER_PORT_ENV}")
    if rpc.tracker is None:
        raise RemoteError("no tracker address: give rpc.tracker (HOST:PORT), --bench-rpc-tracker or "
                          f"{TRACKER_HOST_ENV} and {TRACKER_PORT_ENV}", where, f"{key}.tracker")
    return Tracker(*parse_address(rpc.tracker), f"{key}.tracker")


def _reachable(tracker: Tracker, timeout: float) -> str | None:
    """None if something accepts connections there, else why not (TVM's own client retries for 60 s)."""
    try:
        with socket.create_connection((tracker.host, tracker.port), timeout=timeout):
            return None
    except TimeoutError:
        return f"no answer within {timeout:g} s"
    except OSError as err:
        return err.strerror or str(err)


def connect_tracker(target: ResolvedTarget, tracker: Tracker, where: str) -> Any:
    """A TrackerSession, or a RemoteError naming the target and the address."""
    from tvm import rpc

    rpc_spec = target.rpc
    problem = _reachable(tracker, rpc_spec.connect_timeout)
    if problem is None:
        try:
            return rpc.connect_tracker(tracker.host, tracker.port)
        except (OSError, RuntimeError) as err:
            problem = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
    raise RemoteError(f"target {target.name!r}: cannot reach the RPC tracker at {tracker} (from {tracker.source}): "
                      f"{problem}. Is `python -m tvm.exec.rpc_tracker --port {tracker.port}` running?", where,
                      f"{_key(target)}.rpc.tracker")


def _key(target: ResolvedTarget) -> str:
    return target.key_path or f"targets[{target.name}]"


def free_devices(target: ResolvedTarget, tracker: Tracker, where: str) -> tuple[int, int]:
    """(free, registered) devices of the target's key, as the tracker reports them now."""
    session = connect_tracker(target, tracker, where)
    try:
        summary = session.summary()
    finally:
        session.close()
    key = target.rpc.key
    queue = summary.get("queue_info", {}).get(key, {})
    registered = sum(1 for s in summary.get("server_info", []) if str(s.get("key", "")).split(":")[-1] == key)
    return int(queue.get("free", 0)), registered


@dataclass
class Device:
    """A held session on one device of the pool."""

    session: Any
    tracker: Tracker
    info: dict[str, Any]


def request(target: ResolvedTarget, tracker: Tracker, where: str) -> Device:
    """Wait up to ``queue_timeout`` for a free device of the key, open a session, set its threads."""
    rpc_spec = target.rpc
    session = connect_tracker(target, tracker, where)
    # The tracker answers a request only when a device is free: bound the wait on its socket.
    sock = getattr(session, "_sock", None)
    if sock is not None:
        sock.settimeout(rpc_spec.queue_timeout)
    started = time.monotonic()
    try:
        remote = session.request(rpc_spec.key, priority=rpc_spec.priority,
                                 session_timeout=rpc_spec.session_timeout, max_retry=1)
    except (RuntimeError, OSError) as err:
        waited = time.monotonic() - started
        text = str(err)
        if "timed out" in text or waited >= rpc_spec.queue_timeout * 0.95:
            raise RemoteError(f"target {target.name!r}: no free device with key {rpc_spec.key!r} at tracker "
                              f"{tracker} within rpc.queue_timeout = {rpc_spec.queue_timeout:g} s (list the "
                              f"queue: python -m tvm.exec.query_rpc_tracker --host {tracker.host} --port "
                              f"{tracker.port})", where, f"{_key(target)}.rpc.queue_timeout") from None
        raise RemoteError(f"target {target.name!r}: the tracker at {tracker} matched key {rpc_spec.key!r} but "
                          f"the device could not be reached: {_last_line(text)}", where,
                          f"{_key(target)}.rpc.key") from None
    finally:
        session.close()
    set_threads(remote, target, where)
    return Device(remote, tracker, describe(remote, target, tracker))


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "unknown error"


def set_threads(remote: Any, target: ResolvedTarget, where: str) -> int:
    """Run TVM on the device with the target's cores, read back from the device.

    TVM fixes a process's largest pool at first use, from the environment
    of the ``rpc_server`` (else hardware threads / 2): it can be narrowed
    from here but not widened, so a server started with too few threads is
    an error that says how to start it.
    """
    want = target.threads
    have = int(remote.get_function("runtime.NumThreads")())
    if have > want:
        remote.get_function("runtime.config_threadpool")(1, want)  # 1: TVM's default (big cores) mode
        have = int(remote.get_function("runtime.NumThreads")())
    if have != want:
        raise RemoteError(f"target {target.name!r}: the device with key {target.rpc.key!r} runs TVM with {have} "
                          f"threads and cannot be given more; the target names {want} (num-cores). Start its "
                          f"server with TVM_NUM_THREADS={want} python -m tvm.exec.rpc_server ...", where,
                          f"{_key(target)}.target")
    return have


def describe(remote: Any, target: ResolvedTarget, tracker: Tracker) -> dict[str, Any]:
    """What the device says about itself: the identity of a remote case's machine."""
    import tvm

    device_type = target.tvm().get_target_device_type()
    dev = remote.device(device_type, 0)
    name = tvm.runtime.Device._DEVICE_TYPE_TO_NAME.get(device_type, str(device_type))
    info: dict[str, Any] = {"rpc_key": target.rpc.key, "tracker": str(tracker), "device_type": name,
                            "exist": bool(dev.exist)}
    for attr in ("device_name", "compute_version", "max_clock_rate", "multi_processor_count"):
        try:
            value = getattr(dev, attr)
        except Exception:  # not every device type answers every attribute
            continue
        if value is not None:
            info[attr] = value
    with contextlib.suppress(Exception):
        info["threads"] = int(remote.get_function("runtime.NumThreads")())
    return info


def device_fingerprint(info: dict[str, Any]) -> str:
    """The same pool and the same kind of device: one machine for history, report and gate.

    The tracker address is left out on purpose (like host names): moving the
    tracker does not change the boards.
    """
    import hashlib
    import json

    parts = [info.get(k) for k in ("rpc_key", "device_type", "device_name", "compute_version", "threads")]
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:12]
