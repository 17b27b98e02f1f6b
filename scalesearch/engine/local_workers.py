"""Workers sharing this machine: how many are alive, and how many CPU threads each should take.

Torch gives every process one intra-op thread per core. Three workers of one study on a 2-core machine
then run six threads on two cores and thrash: measured, the same `grid` command started three times
finished no training in 9.5 minutes, against 154 s with one thread each. So every worker holds a lock
file in `<out>/.workers/` while it lives, and before each trial counts the live ones and takes its
share of the cores. Workers started by `--jobs`, or by hand with the same `--out`, size themselves
alike; no setting is needed. (Workers on other machines keep their own out directories and count
their own.)
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from filelock import FileLock, Timeout

WORKERS_DIR = ".workers"
_YOUNG_SECONDS = 10.0  # a lock file this new may not be locked yet by its owner: never reap it


def cpu_cores() -> int:
    """Cores this process may run on (the affinity mask: a SLURM or taskset limit counts)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def thread_share(*, live_workers: int, cores: int | None = None) -> int:
    """Intra-op threads for one of `live_workers` workers: an equal share of the cores, at least one."""
    return max(1, (cores or cpu_cores()) // max(1, live_workers))


class LocalWorkers:
    """This process's registration as a live worker of an out directory (a context manager)."""

    def __init__(self, out_dir: str | os.PathLike):
        self.dir = Path(out_dir) / WORKERS_DIR
        self.path = self.dir / f"{os.getpid()}.lock"
        self._lock: FileLock | None = None

    def __enter__(self) -> "LocalWorkers":
        self.dir.mkdir(parents=True, exist_ok=True)
        self._lock = FileLock(self.path)
        self._lock.acquire(timeout=0)
        return self

    def __exit__(self, *exc) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
            self.path.unlink(missing_ok=True)

    def live(self) -> int:
        """Live workers of this out directory on this machine, this one included."""
        count = 1 if self._lock is not None else 0
        for path in self.dir.glob("*.lock"):
            if path == self.path:
                continue
            probe = FileLock(path)
            try:
                probe.acquire(timeout=0)
            except Timeout:
                count += 1  # its owner holds it: alive
                continue
            probe.release()
            try:  # nobody holds it: its worker is gone (killed); tidy up unless it was just created
                if time.time() - path.stat().st_mtime > _YOUNG_SECONDS:
                    path.unlink(missing_ok=True)
            except OSError:
                pass
        return count
