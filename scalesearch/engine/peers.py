"""`--jobs N`: N - 1 more worker processes of the same run, cooperating through the study storage.

No scheduler of our own: each extra process makes the very API call the first one made (its arguments as
JSON, run by peer_main.py), a full worker of the same study, so the exactly-once queue, resume and crash
recovery are the ones a single worker has. The first process keeps the console (one progress bar counts every worker's results); the others write
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
CALL_ENV = "SCALESEARCH_PEER_CALL"  # the API call a peer makes, as JSON


def is_peer() -> bool:
    return bool(os.environ.get(PEER_ENV))


def device_plan(*, jobs: int, devices: list[int] | None, jobs_per_device: int) -> list[str | None]:
    """CUDA_VISIBLE_DEVICES of each worker (the first process first); None: leave it as it is.

    Small proxies are launch-bound, so several processes per GPU add throughput (two graphed processes
    on one H100 gave about 1.8x one); with `devices`, each listed GPU gets `jobs_per_device` workers.
    """
    if devices is None:
        return [None] * jobs
    return [str(d) for _ in range(jobs_per_device) for d in devices]


class Peers:
    """The extra workers of one `--jobs` run."""

    def __init__(self, *, call: str, count: int, out_dir: Path, visible_devices: list[str | None] | None = None):
        self.call, self.count, self.log_dir = call, count, Path(out_dir) / WORKERS_DIR
        self.visible_devices = visible_devices or [None] * count  # CUDA_VISIBLE_DEVICES of each peer
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Path] = []

    def start(self) -> None:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # The call travels in the environment, not on the command line, where `ps` would show a storage password.
        # This checkout first on the path: the caller may have imported it from a directory the peer would not.
        package_parent = str(Path(__file__).resolve().parents[2])
        path = os.pathsep.join(p for p in (package_parent, os.environ.get("PYTHONPATH", "")) if p)
        env = {**os.environ, PEER_ENV: "1", CALL_ENV: self.call, "PYTHONPATH": path}
        for k, visible in zip(range(1, self.count + 1), self.visible_devices):
            log_path = self.log_dir / f"peer-{k}.log"
            peer_env = env if visible is None else {**env, "CUDA_VISIBLE_DEVICES": visible}
            with open(log_path, "w") as log_file:
                self.procs.append(subprocess.Popen([sys.executable, "-m", "scalesearch.engine.peer_main"],
                                                   env=peer_env,
                                                   stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file,
                                                   start_new_session=True))
            self.logs.append(log_path)

    def interrupt(self) -> None:
        """One SIGINT to each live peer: it stops between storage operations, like a Ctrl-C."""
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)

    def kill(self) -> None:
        """SIGKILL every live peer (its running trial is re-queued by the next worker on this machine)."""
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()

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
