"""`--jobs N`: N - 1 more worker processes of the same command, cooperating through the study storage.

No scheduler of our own: each extra process is the very command the user typed, a full worker of the
same study, so the exactly-once queue, resume and crash recovery are the ones a single worker has. The
first process keeps the console (one progress bar counts every worker's results); the others write
their log to `<out>/.workers/peer-K.log`. They start in their own session so that a Ctrl-C in the
terminal reaches the first process only, which passes on exactly one interrupt to each (a second
SIGINT arriving mid-cleanup would turn a clean stop into a traceback).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .local_workers import WORKERS_DIR

PEER_ENV = "SCALESEARCH_PEER"  # set in the extra workers: they start no workers of their own


def is_peer() -> bool:
    return bool(os.environ.get(PEER_ENV))


class Peers:
    """The extra workers of one `--jobs` run."""

    def __init__(self, *, argv: list[str], count: int, out_dir: Path):
        self.argv, self.count, self.log_dir = list(argv), count, Path(out_dir) / WORKERS_DIR
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Path] = []

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, PEER_ENV: "1"}
        for k in range(1, self.count + 1):
            log_path = self.log_dir / f"peer-{k}.log"
            with open(log_path, "w") as log_file:
                self.procs.append(subprocess.Popen([sys.executable, "-m", "scalesearch", *self.argv], env=env,
                                                   stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                                                   start_new_session=True))
            self.logs.append(log_path)

    def interrupt(self) -> None:
        """One SIGINT to each live peer: it stops between storage operations, like a Ctrl-C."""
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)

    def wait(self, timeout: float) -> list[str]:
        """Wait for every peer (killing any still alive after `timeout`); a line per peer that failed."""
        deadline = time.monotonic() + timeout
        problems = []
        for p, log_path in zip(self.procs, self.logs):
            try:
                code = p.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                code = p.wait()
                problems.append(f"worker {p.pid} did not stop in time and was killed (log {log_path})")
                continue
            if code not in (0, 130):
                problems.append(f"worker {p.pid} exited with status {code} (log {log_path})")
        return problems
