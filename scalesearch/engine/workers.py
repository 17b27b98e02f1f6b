"""`jobs=N` (or `devices`): the extra worker processes of one run, started, interrupted and awaited by the engine.

The API call that runs a study (`scalesearch.grid(...)`, `search`, `compare`) starts them once its study is
open, so a Python caller gets what the command line gets. Each peer is the same API call in a fresh process
(`python -m scalesearch.engine.peer_main CALL`, the call as JSON), a full worker of the same study; see
peers.py for how they are started and signalled, and local_workers.py for how workers of one machine share
its cores.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from pathlib import Path
from typing import Callable

from ..errors import UserError
from ..host import uses_cuda
from .local_workers import LocalWorkers, auto_jobs
from .peers import Peers, device_plan, is_peer


class PeerGroup:
    """The extra workers of one run: planned when the call starts, started once its study is open."""

    def __init__(self, jobs: int | str, say: Callable[[str], None], *, call: dict | None = None,
                 devices: list[int] | None = None, jobs_per_device: int = 1, device: str | None = "auto",
                 threads: int | None = None):
        if devices is not None:
            if jobs not in (1, "auto"):
                raise UserError("--devices spreads the workers over GPUs: give --jobs-per-device instead of --jobs")
            if device == "cpu":
                raise UserError("--devices names CUDA devices; drop it, or use --device cuda/auto")
        if not (jobs == "auto" or (isinstance(jobs, int) and 1 <= jobs <= 256)):
            raise UserError(f"--jobs must be 'auto' or a whole number from 1 to 256, got {jobs!r}")
        self.auto = jobs == "auto" and devices is None
        if jobs == "auto":
            jobs = 1 if devices is not None else auto_jobs(on_cuda=uses_cuda(device), threads=threads)
        plan = device_plan(jobs=jobs, devices=devices, jobs_per_device=jobs_per_device)
        if plan[0] is not None and not is_peer():
            # Before CUDA is initialised in this process: the first worker takes the first device.
            os.environ["CUDA_VISIBLE_DEVICES"] = plan[0]
            import torch

            if not torch.cuda.is_available():
                raise UserError(f"--devices {','.join(map(str, devices))}: no CUDA device is available here")
        self.plan = [] if is_peer() else plan[1:]
        self.count = len(self.plan)
        self.call, self.say = call or {}, say  # call: the API call each peer makes (function, kwargs)
        self.peers: Peers | None = None

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


@contextlib.contextmanager
def sigterm_interrupts():
    """SIGTERM (`timeout`, `kill`, a job scheduler) interrupts the call the way Ctrl-C does, from its first
    instruction: the run then stops its peers and writes its files. Only where SIGTERM has Python's default
    (it would end the process at once); a handler of the caller's, or an ignored SIGTERM, is left alone."""
    if threading.current_thread() is not threading.main_thread() \
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def run_with_peers(run: Callable[[Callable[[Path], list[int]] | None], object], *, call: dict,
                   jobs: int | str, devices: list[int] | None, jobs_per_device: int, device: str | None,
                   threads: int | None, say: Callable[[str], None]):
    """`run(on_open)` with the peers `jobs`/`devices` ask for: started once the study is open, stopped with it
    (on KeyboardInterrupt: one interrupt each, then waited for), awaited when it ends."""
    with sigterm_interrupts():
        group = PeerGroup(jobs, say, call=call, devices=devices, jobs_per_device=jobs_per_device, device=device,
                          threads=threads)
        try:
            result = run(group.on_open)
            group.finished()  # a Ctrl-C while the peers wind down stops them too (they run in their own session)
        except BaseException:  # Ctrl-C, SIGTERM, or a crash here: the peers must not go on alone
            group.interrupted()
            raise
    return result
