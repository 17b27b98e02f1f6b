"""Workers sharing this machine: how many are alive, and how many CPU threads each trial takes.

Torch gives every process one intra-op thread per core, so several workers of one study on one machine
oversubscribe its cores and thrash.

So a CPU trial trains with one thread unless the user asks for more (`--threads`), and the cores are
used by running one worker per core (`--jobs auto`). One thread is also what makes results
reproducible: CPU float reductions are ordered by the thread count, so the same network and seed
trained with 1 and with 2 threads end at different accuracies. With a fixed thread count a trial's
accuracy does not depend on `--jobs`, on how many workers happen to be alive, or on the machine's core
count. Small proxies gain little from intra-op threads anyway: two one-thread trainings side by side
finish sooner than the same two one after the other with two threads each.

Every worker holds a lock file in `<out>/.workers/` while it lives. When the user does ask for several
threads per trial, each worker takes at most its share of the cores (cores // live workers), so
workers started by `--jobs` or by hand with the same `--out` never oversubscribe the machine. (Workers
on other machines keep their own out directories and count their own.)
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from filelock import FileLock, Timeout

from ..host import cpu_cores, running

WORKERS_DIR = ".workers"
DEFAULT_CPU_THREADS = 1  # intra-op threads of a CPU trial unless --threads says otherwise (see above)
MAX_AUTO_JOBS = 16  # `--jobs auto` on a large CPU machine: every worker holds its own copy of the data
_YOUNG_SECONDS = 10.0  # a lock file this new may not be locked yet by its owner: never reap it


def thread_share(*, live_workers: int, cores: int | None = None) -> int:
    """Intra-op threads for one of `live_workers` workers: an equal share of the cores, at least one."""
    return max(1, (cores or cpu_cores()) // max(1, live_workers))


def trial_threads(*, requested: int | None, live_workers: int, cores: int | None = None) -> int:
    """Intra-op threads of one CPU trial: what was asked (default 1), never more than this worker's share."""
    return min(requested or DEFAULT_CPU_THREADS, thread_share(live_workers=live_workers, cores=cores))


def auto_jobs(*, on_cuda: bool, threads: int | None, cores: int | None = None) -> int:
    """`--jobs auto`: on CPU one worker per `threads` cores (so every core trains); on a GPU one worker."""
    if on_cuda:
        return 1
    return max(1, min(MAX_AUTO_JOBS, (cores or cpu_cores()) // (threads or DEFAULT_CPU_THREADS)))


class LocalWorkers:
    """This process's registration as a live worker of an out directory (a context manager)."""

    def __init__(self, out_dir: str | os.PathLike):
        self.dir = Path(out_dir) / WORKERS_DIR
        self.path = self.dir / f"{os.getpid()}.lock"
        self._lock: FileLock | None = None
        self._expected: set[int] = set()  # peers this process started that may not have registered yet

    def expect(self, pids) -> None:
        """Count these just-started processes as live until they exit, registered or not: a peer takes a few
        seconds to start, and a first trial sized without it would oversubscribe the cores for its whole length."""
        self._expected.update(int(p) for p in pids)

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
        registered = set()
        for path in self.dir.glob("*.lock"):
            if path == self.path:
                continue
            probe = FileLock(path)
            try:
                probe.acquire(timeout=0)
            except Timeout:
                count += 1  # its owner holds it: alive
                registered.add(path.stem)
                continue
            probe.release()
            try:  # nobody holds it: its worker is gone (killed); tidy up unless it was just created
                if time.time() - path.stat().st_mtime > _YOUNG_SECONDS:
                    path.unlink(missing_ok=True)
            except OSError:
                pass
        self._expected = {pid for pid in self._expected if running(pid)}
        return count + sum(1 for pid in self._expected if str(pid) not in registered)
