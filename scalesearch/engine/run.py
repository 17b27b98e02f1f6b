"""The run loop: open (or resume) the study, work the queue until every wanted item is settled, race seeds.

Any number of these loops may work on one study at once (processes on one
machine, or machines sharing a PostgreSQL storage); the queue module's
invariants keep every item evaluated exactly once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import platform
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
from ..fileio import atomic_write_json, atomic_write_text
from . import interrupts, queue
from .objective import CandidateFailed, Experiment
from .strategies import Stray, strategy_for
from .networks import best_payload
from .results import CandidateRecord, candidate_records, rows_to_csv
from ..host import cpu_cores, process_identity
from .local_workers import LocalWorkers, trial_threads
from .storage import GRACE_SECONDS, HEARTBEAT_SECONDS, open_storage, redact_url, run_dir_lock

log = logging.getLogger("scalesearch.engine")


@dataclass
class RunResult:
    """What a finished (or interrupted) run leaves: the records, best.json's payload, and whether it is complete."""

    out_dir: Path
    records: list[CandidateRecord]
    best: dict | None
    complete: bool


def _mark_alive(trial: optuna.Trial, trial_id: int | None = None) -> None:
    """Record the first heartbeat ourselves, then mark the trial alive (queue invariant I5).

    A trial with the mark always has a heartbeat for the stale check. Through `Trial.storage` and the
    storage's heartbeat methods (Optuna's BaseHeartbeat; pinned to optuna 5), no private attribute.
    """
    storage = trial.storage
    if callable(getattr(storage, "record_heartbeat", None)) and storage.get_heartbeat_interval():
        storage.record_heartbeat(trial_id if trial_id is not None else _trial_id(trial))
    trial.set_user_attr("alive", True)


def _trial_id(trial: optuna.Trial) -> int:
    """The storage's id of `trial`, from its study's name and its number."""
    storage = trial.storage
    return storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(trial.study.study_name),
                                                           trial.number)


class _Heartbeat:
    """Records the running trial's heartbeat every interval while it is evaluated (a daemon thread).

    Optuna beats only inside `Study.optimize`; this loop uses `ask`/`tell`, so it beats itself through the
    storage's heartbeat methods. Without heartbeats (in-memory storages) it does nothing.
    """

    def __init__(self, trial: optuna.Trial, trial_id: int | None):
        import threading

        storage = trial.storage
        self.interval = storage.get_heartbeat_interval() if callable(getattr(storage, "record_heartbeat", None)) \
            else None
        self.stop = threading.Event()
        self.thread = None
        if self.interval:
            number = trial.number

            def beat() -> None:
                missed = 0
                while not self.stop.wait(self.interval):
                    try:
                        storage.record_heartbeat(trial_id)
                        missed = 0
                    except Exception as exc:  # noqa: BLE001 - a missed beat is retried; the grace period covers it
                        missed += 1
                        (log.warning if missed == 2 else log.debug)(
                            "trial %d: heartbeat not recorded (%d in a row): %s", number, missed, exc)

            self.thread = threading.Thread(target=beat, name="scalesearch-heartbeat", daemon=True)

    def __enter__(self) -> "_Heartbeat":
        if self.thread is not None:
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        if self.thread is not None:
            # A beat stuck on a dead connection must not hold the run: the thread is a daemon.
            self.thread.join(timeout=2 * self.interval)
            if self.thread.is_alive():
                log.warning("heartbeat thread still blocked in the storage after %d s; going on without it",
                            2 * self.interval)


class _PerTrialSampler(optuna.samplers.BaseSampler):
    """The strategy's sampler, made anew for each trial with a seed from --seed and the trial's number.

    One fixed seed would make every worker, and every resumed run, replay the same draws; trial numbers are
    unique across workers and machines, so seeding from them keeps a fresh single run reproducible while
    parallel and resumed ones draw new points. (A sampler registered in samplers.py must therefore keep its
    state in the study, as TPE, CMA-ES and random do, not in the instance.)
    """

    def __init__(self, cfg: SearchConfig):
        self.cfg = cfg
        self.current = make_sampler(cfg, 0)

    def before_trial(self, study, trial) -> None:
        self.current = make_sampler(self.cfg, trial.number * 64)
        self.current.before_trial(study, trial)

    def infer_relative_search_space(self, study, trial):
        return self.current.infer_relative_search_space(study, trial)

    def sample_relative(self, study, trial, search_space):
        return self.current.sample_relative(study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self.current.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study, trial, state, values) -> None:
        self.current.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self.current.reseed_rng()


def make_sampler(cfg: SearchConfig, nonce: int) -> optuna.samplers.BaseSampler:
    """The strategy's sampler seeded from --seed and `nonce` (a trial's number, times 64)."""
    return strategy_for(cfg).sampler((cfg.seed * 1_000_003 + nonce) % (2**31 - 1))


def open_study(cfg: SearchConfig, exp: Experiment, strategy=None) -> optuna.Study:
    """Create or load the study; refuse (UserError, one line) to resume a study run differently."""
    strategy = strategy or strategy_for(cfg, exp)
    pruner = strategy.pruner(exp.proxy.train.epochs)  # before the storage: a refused pruner creates nothing
    storage = open_storage(cfg.storage_url)
    sampler = _PerTrialSampler(cfg)
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
        _mark_alive(trial, trial_id)
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
            c = self.strategy.candidate(trial, item=queue.params_of(me) if queue.is_queued(me) else None)
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
            # Optuna warns that its own heartbeat runs only inside optimize(); _Heartbeat beats here instead.
            warnings.filterwarnings("ignore", message=".*[Hh]eartbeat.*")
            trial = study.ask()
        trial_id = _trial_id(trial)
        try:
            with _Heartbeat(trial, trial_id):
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


def redacted_config(cfg: SearchConfig) -> dict:
    """The command line and config for best.json, with a storage password replaced by ***."""
    from .storage import _password

    config, command_line = cfg.to_dict(), cfg.command_line
    secret = _password(cfg.storage) if cfg.storage else None
    if cfg.storage:
        config["storage"] = redact_url(cfg.storage)
    if secret:
        command_line = command_line.replace(secret, "***")
    config["command_line"] = command_line
    return {"command_line": command_line, "config": config}


def provenance(exp: Experiment) -> dict:
    import torch
    import typer

    from .. import __version__

    versions = {"scalesearch": __version__, "torch": torch.__version__, "optuna": optuna.__version__,
                "typer": typer.__version__, "python": platform.python_version()}
    try:
        from importlib.metadata import version

        versions["fvcore"] = version("fvcore")
        versions["scipy"] = version("scipy")
    except Exception:  # noqa: BLE001 - provenance is best effort
        pass
    device = str(exp.device)
    if exp.device.type == "cuda":
        device += f" ({torch.cuda.get_device_name(exp.device)})"
    else:
        device += f" ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    data = exp.data
    return {"versions": versions, "device": device,
            "data": {"name": data.name, "num_classes": data.num_classes, "image_size": data.image_size,
                     "train": len(data.train_labels), "val": len(data.val_labels),
                     "test": 0 if data.test_labels is None else len(data.test_labels),
                     "fingerprint": exp.fingerprint},
            "proxy": {"name": exp.proxy.name, "width_mult": exp.proxy.width_mult,
                      "depth_mult": exp.proxy.depth_mult, "resolution": exp.proxy.resolution,
                      "train": exp.proxy.train.__dict__},
            **redacted_config(exp.config),
            "flop_convention": "multiply-adds, fvcore, batch 1, eval mode", "cost": exp.config.metric.to_dict()}


class Outputs:
    """trials.csv always; best.json once a candidate completed; both atomic, from the storage alone."""

    FILES = "trials.csv, best.json"

    def __init__(self, cfg: SearchConfig, exp: Experiment):
        self.cfg = cfg
        # Computed once per run: provenance hashes nothing, but the data fingerprint behind it did.
        self.extra = {"study": cfg.study_name, "storage": redact_url(cfg.storage_url), "mode": cfg.mode,
                      "seeds_policy": cfg.seeds_label(exp.proxy), "provenance": provenance(exp)}
        self.refine = exp.refine

    def write(self, study: optuna.Study, complete: bool) -> tuple[list[CandidateRecord], dict | None]:
        cfg = self.cfg
        records = candidate_records(study.get_trials(deepcopy=False), cfg.budget, law=cfg.metric.law)
        atomic_write_text(cfg.out_dir / "trials.csv", rows_to_csv(records))
        best = best_payload(records, budget=cfg.budget, tolerance=cfg.tolerance, significance=cfg.significance,
                            complete=complete, extra=self.extra, metric=cfg.metric, refine=self.refine,
                            step=cfg.step)
        if best is not None:
            atomic_write_json(cfg.out_dir / "best.json", best)
        return records, best


def run_study(
    cfg: SearchConfig,
    exp: Experiment,
    *,
    on_trial: Callable[[dict], None] | None = None,
    log_line: Callable[[str], None] = log.info,
    on_progress: Callable[[int, int], None] | None = None,
    worker_index: int = 0,
    outputs_cls: type = Outputs,
    on_open: Callable[[Path], Iterable[int] | None] | None = None,
) -> RunResult:
    """Run (or resume) the study until every wanted item is settled.

    The strategy (engine/strategies.py, chosen by `cfg.mode`) says what the study holds; `outputs_cls` what
    files it leaves (grid and sampler runs by default; `compare` passes its own). `on_open` is called once the study is open and its queue
    filled, before any training, with the out directory (`--jobs` starts its extra workers there). On
    Ctrl-C the outputs are written from the storage before KeyboardInterrupt propagates.
    """
    # Ctrl-C stops between storage operations, never inside one; this machine's workers count each other.
    with interrupts.deferring(), LocalWorkers(cfg.out_dir) as local, _optuna_quiet():
        return _run_study(cfg, exp, on_trial=on_trial, log_line=log_line, on_progress=on_progress,
                          worker_index=worker_index, outputs_cls=outputs_cls, local=local,
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


def _run_study(cfg, exp, *, on_trial, log_line, on_progress, worker_index, outputs_cls, local,
               on_open) -> RunResult:
    strategy = strategy_for(cfg, exp)
    with run_dir_lock(cfg.out_dir):
        # Serialises this machine's workers while they create the schema and fill the queue.
        study = open_study(cfg, exp, strategy)  # refuses a changed experiment before anything runs
        for note in [f"writing to {cfg.out_dir}/ ({outputs_cls.FILES}); storage "
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
    outputs = outputs_cls(cfg, exp)

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
