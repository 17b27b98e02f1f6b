"""The run loop: open (or resume) the study, work the queue until every wanted item is settled, race seeds.

Any number of these loops may work on one study at once (processes on one
machine, or machines sharing a PostgreSQL storage); the queue module's
invariants keep every item evaluated exactly once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import optuna
from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

from ..config import SearchConfig
from ..errors import UserError
from . import interrupts, queue
from .objective import CandidateFailed, Experiment
from .strategies import PerTrialSampler, Stray, strategy_for
from .results import CandidateRecord
from ..host import cpu_cores, process_identity
from .local_workers import LocalWorkers, trial_threads
from .storage import (GRACE_SECONDS, HEARTBEAT_SECONDS, Heartbeat, mark_alive, open_storage, redact_url, run_dir_lock,
                      storage_trial_id)

log = logging.getLogger("scalesearch.engine")


RUN_CALLBACKS = ("on_trial", "on_progress", "log_line")  # what run_study reports through, besides files


def run_callbacks(callbacks: dict) -> dict:
    """The run_study callbacks among an API call's extra keywords (`command_line` is recorded, not called);
    TypeError for any other."""
    unknown = set(callbacks) - set(RUN_CALLBACKS) - {"command_line"}
    if unknown:
        raise TypeError(f"unexpected keyword argument(s): {', '.join(sorted(unknown))}")
    return {k: v for k, v in callbacks.items() if k in RUN_CALLBACKS}


@dataclass
class RunResult:
    """What a finished (or interrupted) run leaves: the records, best.json's payload, and whether it is complete."""

    out_dir: Path
    records: list[CandidateRecord]
    best: dict | None
    complete: bool


def open_study(cfg: SearchConfig, exp: Experiment, strategy=None) -> optuna.Study:
    """Create or load the study; refuse (UserError, one line) to resume a study run differently."""
    strategy = strategy or strategy_for(cfg, exp)
    pruner = strategy.pruner(exp.proxy.train.epochs)  # before the storage: a refused pruner creates nothing
    storage = open_storage(cfg.storage_url)
    sampler = PerTrialSampler(cfg)
    study = optuna.create_study(study_name=cfg.study_name, storage=storage, direction="maximize",
                                sampler=sampler, pruner=pruner, load_if_exists=True)
    current = {**exp.identity(), **strategy.identity()}
    saved = study.user_attrs.get("experiment")
    if saved is None and study.get_trials(deepcopy=False):
        raise UserError(f"study {cfg.study_name!r} has trials but no record of how they were run (an older "
                        "scalesearch?): use another --out or --study")
    if saved is not None:
        differ = [k for k in sorted(set(saved) | set(current)) if saved.get(k) != current.get(k)]
        if differ:
            said = "; ".join(f"{k}: study {saved.get(k)!r}, this command {current.get(k)!r}" for k in differ)
            raise UserError(f"cannot resume study {cfg.study_name!r}: it was run differently ({said}); "
                            "repeat the original options, or use another --out or --study")
    else:
        study.set_user_attr("experiment", current)
        study.set_user_attr("budget", cfg.budget)
    return study


_RACING_NOTE = "racing_note:"  # prefix of the study attributes that carry racing decisions


class Worker:
    """One worker's loop over the study: queue what the strategy wants, ask, evaluate, tell, race, stop.

    Any number of these may work on one study at once (processes on one machine, or machines sharing a
    storage); the queue module's invariants keep every item evaluated exactly once.
    """

    def __init__(self, cfg: SearchConfig, exp: Experiment, study: optuna.Study, worker_index: int = 0, *,
                 local: LocalWorkers | None = None, strategy=None):
        self.cfg, self.exp, self.study, self.worker_index = cfg, exp, study, worker_index
        self.strategy = strategy or strategy_for(cfg, exp)
        self.local = local  # this machine's live workers of the run (None: no thread sizing)
        # Racing decisions are posted on the study, so every worker's console shows them, not only the log of
        # the worker that happened to make them; those made before this worker started are not shown again.
        self._racing_shown = set(self._racing_notes())

    # ------------------------------------------------------------ racing notes, one console for the run

    def _racing_notes(self) -> dict[str, dict]:
        return {k: v for k, v in self.study.user_attrs.items() if k.startswith(_RACING_NOTE)}

    def _post_racing_note(self, line: str, log_line: Callable[[str], None]) -> None:
        now = time.time()
        key = f"{_RACING_NOTE}{now:.6f}:{socket.gethostname()}:{os.getpid()}"
        self.study.set_user_attr(key, {"at": now, "line": line})
        self._racing_shown.add(key)
        log_line(line)

    def _show_others_racing_notes(self, log_line: Callable[[str], None]) -> None:
        notes = self._racing_notes()
        for key in sorted(set(notes) - self._racing_shown, key=lambda k: (notes[k].get("at", 0), k)):
            self._racing_shown.add(key)
            log_line(str(notes[key].get("line", "")))

    # ------------------------------------------------------------ what the study holds

    def wanted(self, trials) -> list[tuple[dict, int]]:
        return self.strategy.wanted(trials)

    def first_pass_done(self, trials) -> bool:
        return self.strategy.first_pass_done(trials)

    def progress(self, trials) -> tuple[int, int]:
        """(settled, wanted) items, for the progress bar."""
        wanted = self.wanted(trials)
        statuses = queue.item_statuses(trials)
        return queue.settled_count(statuses, [queue.item_key(p, s) for p, s in wanted]), self.strategy.total(trials)

    def describe(self) -> str:
        return self.strategy.describe()

    # ------------------------------------------------------------ evaluating one trial

    def _size_threads(self) -> int | None:
        """Set this worker's intra-op threads for the next CPU trial (see local_workers) and return them;
        None when not on the CPU. OMP_NUM_THREADS set by the user is left alone (and recorded)."""
        device = getattr(self.exp, "device", None)
        if getattr(device, "type", None) != "cpu":
            return None
        import torch

        if os.environ.get("OMP_NUM_THREADS"):
            return torch.get_num_threads()
        live = self.local.live() if self.local is not None else 1
        threads = trial_threads(requested=self.cfg.threads, live_workers=live)
        if threads != torch.get_num_threads():
            torch.set_num_threads(threads)
            log.info("%d worker(s) of this run on this machine, %d core(s): %d thread(s) per trial",
                     live, cpu_cores(), threads)
        return threads

    def objective(self, trial: optuna.Trial, trial_id: int | None = None) -> float:
        """Evaluate the trial's item; raises TrialPruned (rejected, pruned, stray) or CandidateFailed."""
        mark_alive(trial, trial_id)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        identity = process_identity()
        if identity is not None:  # lets a worker on this machine fail the trial at once if this process dies
            trial.set_user_attr("process", identity)
        threads = self._size_threads()
        if threads is not None:
            trial.set_user_attr("threads", threads)
        study = self.study
        me = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
        try:
            c = self.strategy.subject(trial, item=queue.params_of(me) if queue.is_queued(me) else None)
        except Stray as why:
            return self._stray(trial, str(why))
        if "seed" not in me.user_attrs:
            trial.set_user_attr("seed", 0)
        if not queue.claim(study.get_trials(deepcopy=False), trial.number):
            return self._stray(trial, "duplicate of a live or finished trial")
        seed = int(me.user_attrs.get("seed", 0))
        try:
            return self.exp.evaluate(trial, c, seed)
        except (optuna.TrialPruned, CandidateFailed, UpdateFinishedTrialError):
            raise
        except KeyboardInterrupt:
            with contextlib.suppress(UpdateFinishedTrialError):  # a peer failed it meanwhile: re-queued there
                trial.set_user_attr("outcome", "interrupted")
            raise
        except Exception as exc:  # noqa: BLE001 - any crash of one candidate is recorded; the run goes on
            attempt = queue.earlier_attempts(study.get_trials(deepcopy=False), trial.number) + 1
            first = (str(exc).strip().splitlines() or [""])[0][:300]
            outcome = "failed" if attempt >= queue.MAX_ATTEMPTS else "error"
            reason = f"{type(exc).__name__}: {first} (attempt {attempt} of {queue.MAX_ATTEMPTS})"
            trial.set_user_attr("reason", f"{outcome}: {reason}")
            trial.set_user_attr("outcome", outcome)
            log.warning("trial %d raised %s", trial.number, reason)
            log.debug("".join(traceback.format_exception(exc)))
            raise CandidateFailed(reason) from exc

    @staticmethod
    def _stray(trial: optuna.Trial, why: str) -> float:
        trial.set_user_attr("stray", True)
        raise optuna.TrialPruned(why)

    def run_one(self, after_trial: Callable) -> None:
        """Ask for a trial (a queued item first, else a new draw), evaluate it, tell the outcome."""
        study = self.study
        with warnings.catch_warnings():
            # Optuna warns that its own heartbeat runs only inside optimize(); Heartbeat beats here instead.
            warnings.filterwarnings("ignore", message=".*[Hh]eartbeat.*")
            trial = study.ask()
        trial_id = storage_trial_id(trial)
        try:
            with Heartbeat(trial, trial_id):
                value = self.objective(trial, trial_id)
        except UpdateFinishedTrialError:
            # Another worker failed this trial while it ran (no heartbeat for the grace period: a suspended
            # process, a lost connection); the item is re-queued there, so this result is dropped.
            log.warning("trial %d was failed by another worker while it ran (no heartbeat for %d s); its item "
                        "is queued again", trial.number, GRACE_SECONDS)
            frozen = study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        except optuna.TrialPruned:
            frozen = study.tell(trial, state=TrialState.PRUNED, skip_if_finished=True)
        except CandidateFailed:
            frozen = study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        except BaseException:  # Ctrl-C, SIGTERM, a crash of the loop itself: the trial fails, the item re-queues
            study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
            raise
        else:
            frozen = study.tell(trial, value, skip_if_finished=True)
        after_trial(study, frozen)

    # ------------------------------------------------------------ the loop

    def work(self, after_trial: Callable, log_line: Callable[[str], None]) -> None:
        study, cfg, strategy = self.study, self.cfg, self.strategy
        waited_note = 0.0
        while True:
            interrupts.checkpoint()  # a Ctrl-C pressed during a storage operation stops here
            queue.fail_stale_trials(study)
            self._show_others_racing_notes(log_line)
            trials = study.get_trials(deepcopy=False)
            with run_dir_lock(cfg.out_dir):  # one machine's workers never queue the same item twice
                queue.ensure_queued(study, self.wanted(trials))
            trials = study.get_trials(deepcopy=False)
            waiting = [t for t in trials if t.state == TrialState.WAITING]
            running = [t for t in trials if t.state == TrialState.RUNNING]
            if waiting or strategy.wants_new_candidate(trials):
                self.run_one(after_trial)
                continue
            if running:
                # Trials of other workers, or of a killed process whose heartbeat will go stale; then
                # they are failed, re-queued above, and picked up here.
                if time.monotonic() - waited_note > 60:
                    log_line(f"waiting for {len(running)} trial(s) still training in other workers (if a worker "
                             f"dies, its trial is re-queued: at once on this machine, after {GRACE_SECONDS} s "
                             f"without a heartbeat from another)")
                    waited_note = time.monotonic()
                interrupts.sleep(HEARTBEAT_SECONDS)
                continue
            rnd = strategy.next_round(trials)  # racing seeds, the refinement round: settled when nothing is pending
            if rnd is not None and rnd.items:
                with run_dir_lock(cfg.out_dir):
                    added = queue.ensure_queued(study, rnd.items)
                if added:
                    self._post_racing_note(rnd.note, log_line)
                    continue
                # Queued by another worker between this one's look at the study and now: work on them too.
                statuses = queue.item_statuses(study.get_trials(deepcopy=False))
                if not all(queue.item_key(p, s) in statuses and statuses[queue.item_key(p, s)].settled
                           for p, s in rnd.items):
                    continue
            break


def _premeasure(exp: Experiment, worker: Worker, log_line: Callable[[str], None]) -> None:
    """On a GPU, budget-match the candidates known up front (a grid's points) on the host's spare cores before
    training starts. On the CPU the cores train, so candidates are matched one at a time as their trials come."""
    from .peers import is_peer

    if getattr(getattr(exp, "device", None), "type", None) != "cuda" or cpu_cores() < 4 or is_peer():
        return  # a --jobs peer starts after the first worker matched everything (read from the cost cache)
    if exp.config.metric.name == "latency":
        return  # timings taken side by side would time the contention: latency is matched one trial at a time
    todo = worker.strategy.open_candidates(worker.study.get_trials(deepcopy=False))
    started = time.monotonic()
    processes = min(cpu_cores() - 1, 16)
    if exp.premeasure(todo, processes=processes):
        log_line(f"measured {len(todo)} candidate(s) in {time.monotonic() - started:.1f} s ({processes} processes)")


def run_study(
    cfg: SearchConfig,
    exp: Experiment,
    *,
    on_trial: Callable[[dict], None] | None = None,
    log_line: Callable[[str], None] = log.info,
    on_progress: Callable[[int, int], None] | None = None,
    worker_index: int = 0,
    on_open: Callable[[Path], Iterable[int] | None] | None = None,
) -> RunResult:
    """Run (or resume) the study until every wanted item is settled.

    The strategy registered for `cfg.mode` (engine/strategies.py) says what the study holds, round by round,
    and what files it leaves (its `outputs`). `on_open` is called once the study is open and its queue
    filled, before any training, with the out directory (`--jobs` starts its extra workers there). On
    Ctrl-C the outputs are written from the storage before KeyboardInterrupt propagates.
    """
    # Ctrl-C stops between storage operations, never inside one; this machine's workers count each other.
    with interrupts.deferring(), LocalWorkers(cfg.out_dir) as local, _optuna_quiet():
        return _run_study(cfg, exp, on_trial=on_trial, log_line=log_line, on_progress=on_progress,
                          worker_index=worker_index, local=local,
                          on_open=on_open)


@contextlib.contextmanager
def _optuna_quiet():
    """Optuna's own INFO lines ("Trial 3 finished with value ...") stay off while a run reports through its
    callbacks and the `scalesearch` logger: they name Optuna's trial value where our record is the candidate."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(max(level, optuna.logging.WARNING))
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)


def _run_study(cfg, exp, *, on_trial, log_line, on_progress, worker_index, local,
               on_open) -> RunResult:
    strategy = strategy_for(cfg, exp)
    with run_dir_lock(cfg.out_dir):
        # Serialises this machine's workers while they create the schema and fill the queue.
        study = open_study(cfg, exp, strategy)  # refuses a changed experiment before anything runs
        for note in [f"writing to {cfg.out_dir}/ ({strategy.outputs.FILES}); storage "
                     f"{redact_url(cfg.storage_url) if cfg.storage else 'study.db'}", *exp.notes]:
            log_line(note)
        queue.fail_stale_trials(study)
        worker = Worker(cfg, exp, study, worker_index, local=local, strategy=strategy)
        trials = study.get_trials(deepcopy=False)
        before = queue.item_statuses(trials)
        added = queue.ensure_queued(study, worker.wanted(trials))
    done, total = worker.progress(study.get_trials(deepcopy=False))
    requeued = sum(1 for s in before.values() if s.outcome == "open")
    log_line(f"study {cfg.study_name}: {worker.describe()}; {done} item(s) already settled, {added} queued"
             + (f" ({requeued} interrupted re-queued)" if requeued else ""))
    if on_progress is not None:
        on_progress(done, total)
    _premeasure(exp, worker, log_line)
    if on_open is not None:
        started = on_open(cfg.out_dir)  # the pids of workers it started, if any: count them from now on
        if started:
            local.expect(started)
    outputs = strategy.outputs(cfg, exp)

    # Trials settled before this worker started are not announced again; other workers' are, as they land.
    shown = {t.number for t in study.get_trials(deepcopy=False) if queue.trial_outcome(t) in queue.FINAL}

    def announce(t: optuna.trial.FrozenTrial) -> None:
        shown.add(t.number)
        if on_trial is not None:
            on_trial({"trial": t.number, "state": queue.trial_outcome(t), "value": t.value, **t.user_attrs})

    def announce_others(trials) -> None:
        """One console for the run: the first process also shows what its peers (or other machines) settled."""
        for t in sorted(trials, key=lambda t: t.number):
            if t.number not in shown and not t.user_attrs.get("stray") and queue.trial_outcome(t) in queue.FINAL:
                announce(t)

    def after_trial(study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> None:
        records, _ = outputs.write(study, complete=False)
        if frozen.user_attrs.get("stray"):
            return
        trials = study.get_trials(deepcopy=False)
        if on_progress is not None:
            on_progress(*worker.progress(trials))
        announce_others([t for t in trials if t.number < frozen.number])
        announce(frozen)
        announce_others(trials)

    complete = False
    try:
        worker.work(after_trial, log_line)
        trials = study.get_trials(deepcopy=False)
        if on_progress is not None:  # the last items may have been settled by other workers while this one waited
            on_progress(*worker.progress(trials))
        announce_others(trials)
        complete = strategy.complete(trials)
    finally:
        # Also on Ctrl-C and crashes: the files always reflect what the storage holds.
        records, best = outputs.write(study, complete=complete)
    return RunResult(cfg.out_dir, records, best, complete)
