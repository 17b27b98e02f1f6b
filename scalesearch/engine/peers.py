"""`jobs=N` (or `devices`): the extra worker processes of one run, planned, started, signalled and awaited.

No scheduler of our own: each peer makes the very API call the first process made (`scalesearch.grid(...)`,
`search`, `compare`; its arguments as JSON, run by `launch.peer_main`), a full worker of the same study, so
the exactly-once queue, resume and crash recovery are the ones a single worker has, and a Python caller gets
what the command line gets. The first process keeps the console (one progress bar counts every worker's
results); the others write their log to `<out>/.workers/peer-K.log`. They start in their own session so that
a Ctrl-C in the terminal reaches the first process only, which passes on exactly one interrupt to each (a
second SIGINT arriving mid-cleanup would turn a clean stop into a traceback). How workers of one machine share
its cores is local_workers.py's.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from ..config import WorkerOptions
from ..errors import UserError
from ..host import uses_cuda
from .interrupts import sigterm_interrupts
from .local_workers import WORKERS_DIR, LocalWorkers, auto_jobs

PEER_ENV = "SCALESEARCH_PEER"  # set in the extra workers: they start no workers of their own
CALL_ENV = "SCALESEARCH_PEER_CALL"  # the API call a peer makes, as JSON
MASK_ENV = "CUDA_VISIBLE_DEVICES"


def is_peer() -> bool:
    return bool(os.environ.get(PEER_ENV))


def device_plan(*, jobs: int, devices: list[int] | None, jobs_per_device: int,
                mask: str | None = None) -> list[str | None]:
    """CUDA_VISIBLE_DEVICES of each worker (the first process first); None: leave it as it is.

    `devices` count within `mask`, the CUDA_VISIBLE_DEVICES already set (a SLURM job's "4,5": device 1 is
    GPU 5), as CUDA itself numbers them. Small proxies are launch-bound, so several processes per GPU add
    throughput (two graphed processes on one H100 gave about 1.8x one); with `devices`, each listed GPU gets
    `jobs_per_device` workers.
    """
    if devices is None:
        return [None] * jobs
    visible = None if mask is None else [d.strip() for d in mask.split(",") if d.strip()]
    if visible is not None:
        beyond = [d for d in devices if d >= len(visible)]
        if beyond:
            shown = f"shows {len(visible)} device(s), numbered from 0" if visible else "is empty"
            raise UserError(f"--devices {','.join(map(str, devices))}: no CUDA device is available here as "
                            f"{beyond[0]} ({MASK_ENV}={mask!r} {shown})")
    name = (lambda d: str(d)) if visible is None else (lambda d: visible[d])
    return [name(d) for _ in range(jobs_per_device) for d in devices]


@contextlib.contextmanager
def _visible(devices: str | None):
    """CUDA_VISIBLE_DEVICES as `devices` for the duration (None: as it is), then as the caller had it. CUDA reads
    it once, when this process first uses a GPU: a caller that already did keeps the devices it had."""
    if devices is None:
        yield
        return
    before = os.environ.get(MASK_ENV)
    os.environ[MASK_ENV] = devices
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(MASK_ENV, None)
        else:
            os.environ[MASK_ENV] = before


class Peers:
    """The extra worker processes of one run: spawned, signalled, awaited."""

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
            peer_env = env if visible is None else {**env, MASK_ENV: visible}
            with open(log_path, "w") as log_file:
                self.procs.append(subprocess.Popen(
                    [sys.executable, "-c", "from scalesearch.launch import peer_main; peer_main()"], env=peer_env,
                    stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file, start_new_session=True))
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


class PeerGroup:
    """The extra workers of one run: planned when the call starts, started once its study is open."""

    def __init__(self, jobs: int | str, say: Callable[[str], None], *, call: dict | None = None,
                 devices: list[int] | None = None, jobs_per_device: int = 1, device: str | None = "auto",
                 threads: int | None = None):
        WorkerOptions(jobs=jobs, devices=devices, jobs_per_device=jobs_per_device).validated(device=device)
        self.auto = jobs == "auto" and devices is None
        if jobs == "auto":
            jobs = 1 if devices is not None else auto_jobs(on_cuda=uses_cuda(device), threads=threads)
        # A peer was started with its GPU alone in view and starts no workers: the plan is the first process's.
        plan = [None] if is_peer() else device_plan(jobs=jobs, devices=devices, jobs_per_device=jobs_per_device,
                                                    mask=os.environ.get(MASK_ENV))
        self.first_devices = plan[0]  # the first worker (this process) takes the first
        self.plan = plan[1:]
        self.count = len(self.plan)
        self.call, self.say = call or {}, say  # call: the API call each peer makes (function, kwargs)
        self.peers: Peers | None = None
        self.devices = devices

    def check_devices(self) -> None:
        """Inside `_visible(first_devices)`: the listed GPUs exist (before CUDA is initialised in this process)."""
        if self.first_devices is not None:
            import torch

            if not torch.cuda.is_available():
                raise UserError(f"--devices {','.join(map(str, self.devices))}: no CUDA device is available here")

    def on_open(self, out_dir: Path) -> list[int]:
        """Start the peers; their pids (the run counts them as live workers from now on)."""
        if self.auto and self.count > 0:
            # `jobs="auto"` fills the machine: workers of this out directory started by hand (the same command
            # run again in another terminal) already take their cores.
            others = LocalWorkers(out_dir).live()  # not entered: counts the others, not this process
            if others:
                keep = max(0, self.count - others)
                self.say(f"--jobs auto: {others} other worker(s) of this run already on this machine; starting "
                         f"{keep} more")
                self.plan, self.count = self.plan[:keep], keep
        if self.count == 0:
            return []
        self.peers = Peers(call=json.dumps(self.call, default=_plain), count=self.count, out_dir=out_dir,
                           visible_devices=self.plan)
        self.peers.start()
        self.say(f"--jobs: started {self.peers.count} more worker(s) of this study (logs in "
                 f"{self.peers.log_dir}/)")
        return [p.pid for p in self.peers.procs]

    def interrupted(self) -> None:
        if self.peers is not None:
            self.peers.interrupt()
            try:
                self._wait(120)
            except KeyboardInterrupt:  # a second Ctrl-C: stop waiting for them to finish cleanly
                self.peers.kill()
                raise

    def finished(self) -> None:
        if self.peers is not None:
            self._wait(600)

    def _wait(self, timeout: float) -> None:
        for line in self.peers.wait(timeout):
            self.say(line)


def _plain(value):
    """What JSON cannot hold as it is, for a peer's copy of the call: paths as text, sequences as lists; anything
    else is refused here rather than turned into text the peer would misread."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (tuple, range, set)):
        return list(value)
    if hasattr(value, "item") and callable(value.item):  # a NumPy or torch scalar
        return value.item()
    raise UserError(f"{type(value).__name__} {value!r} cannot be passed to a worker process: give plain numbers, "
                    "strings and lists")


def run_with_peers(run: Callable[[Callable[[Path], list[int]] | None], object], *, call: dict,
                   jobs: int | str, devices: list[int] | None, jobs_per_device: int, device: str | None,
                   threads: int | None, say: Callable[[str], None]):
    """`run(on_open)` with the peers `jobs`/`devices` ask for: started once the study is open, stopped with it
    (on KeyboardInterrupt: one interrupt each, then waited for), awaited when it ends. The caller's
    CUDA_VISIBLE_DEVICES is as it was afterwards."""
    with sigterm_interrupts():
        group = PeerGroup(jobs, say, call=call, devices=devices, jobs_per_device=jobs_per_device, device=device,
                          threads=threads)
        with _visible(group.first_devices):
            group.check_devices()
            try:
                result = run(group.on_open)
                group.finished()  # a Ctrl-C while the peers wind down stops them too (they run in their own session)
            except BaseException:  # Ctrl-C, SIGTERM, or a crash here: the peers must not go on alone
                group.interrupted()
                raise
    return result


def run_call(function: str, kwargs: dict, run: Callable, *, workers: WorkerOptions, device: str | None,
             threads: int | None, callbacks: dict):
    """`run(on_open)` with the worker processes `workers` ask for; each peer makes this very API call
    (`scalesearch.<function>(**kwargs)`) in a process of its own."""
    import logging

    say = callbacks.get("log_line") or logging.getLogger("scalesearch").info
    call = {"function": function, "kwargs": {**kwargs, "command_line": callbacks.get("command_line", "")}}
    return run_with_peers(run, call=call, jobs=workers.jobs, devices=workers.devices,
                          jobs_per_device=workers.jobs_per_device, device=device, threads=threads, say=say)
