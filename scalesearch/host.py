"""Facts about the machine this process runs on: its devices, its cores, and this process's identity.

A leaf every layer may ask (data decoding counts cores, the engine identifies its workers, training resolves
its device): it imports nothing of ours but errors, and torch only when a device is resolved.
"""

from __future__ import annotations

import functools
import os

from .errors import UserError

DEVICES = ("auto", "cpu", "cuda")  # --device: auto is cuda where a GPU is visible
DEVICE_TYPES = ("cpu", "cuda")  # where a network runs, trains or is timed (--latency-device)


def resolve_device(device: str):
    """`auto`, `cpu` or `cuda` -> a torch device; UserError (a ValueError) when it cannot be had."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device not in DEVICE_TYPES:
        raise UserError(f"unknown --device {device!r}; choose one of {', '.join(DEVICES)}")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available here")
    return torch.device(device)


def uses_cuda(device: str | None) -> bool:
    """Whether `device` (auto, cpu, cuda; None: auto) will train on a GPU here; a bad value is refused later,
    with the rest of the options."""
    if device == "cuda":
        return True
    if device not in (None, "auto"):
        return False
    import torch

    return torch.cuda.is_available()


def cpu_cores() -> int:
    """Cores this process may run on (the affinity mask: a SLURM or taskset limit counts)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _proc_stat(pid: int | str) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state first), None where it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[-1].split()
    except OSError:
        return None


@functools.lru_cache(maxsize=1)
def _namespace() -> str | None:
    """This kernel boot and PID namespace; None where /proc does not say (not Linux).

    Read once per process (neither changes while it runs); `died_here` asks for every running trial of every
    pass of the work loop. Two processes see the same PIDs exactly when they share both. The boot id changes at
    every boot, so a process recorded before a reboot is never mistaken for one alive now; a container with its
    own PID namespace has its own inode, so a worker in another container is never judged by this one's PIDs.
    """
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            boot = f.read().strip()
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    return f"{boot}/{namespace}" if boot else None


def process_identity() -> str | None:
    """This process, as a trial records it: '<boot id>/<PID namespace>/<pid>/<start time>', or None (not Linux).

    The start time (clock ticks after boot) tells a reused PID from the process that held it."""
    namespace, stat = _namespace(), _proc_stat("self")
    if namespace is None or stat is None or len(stat) < 20:
        return None
    return f"{namespace}/{os.getpid()}/{stat[19]}"


def died_here(identity: object) -> bool:
    """Whether `identity` (from `process_identity`) names a process of this machine's PID namespace that has
    exited: gone, a zombie, or its PID now held by a later process. False whenever that cannot be known for
    sure (another machine or container, no /proc, a malformed value): the heartbeat check then decides."""
    if not isinstance(identity, str):
        return False
    head, _, started = identity.rpartition("/")
    namespace, _, pid = head.rpartition("/")
    if not started or namespace != _namespace() or not pid.isdigit() or int(pid) <= 0:
        return False
    stat = _proc_stat(int(pid))
    if stat is None:
        return not os.path.exists(f"/proc/{int(pid)}")  # unreadable but present (permissions): not known dead
    return stat[0] == "Z" or (len(stat) >= 20 and stat[19] != started)


def running(pid: int) -> bool:
    """Whether process `pid` exists and has not exited (a zombie awaiting its parent counts as exited)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = _proc_stat(pid)
    return stat is None or stat[0] != "Z"  # no /proc (not Linux): it exists
