"""The run loop: open (or resume) the study, work the queue until every wanted item is settled, race seeds.

Any number of these loops may work on one study at once (processes on one
machine, or machines sharing a PostgreSQL storage); the queue module's
invariants keep every item evaluated exactly once.
"""

from __future__ import annotations

import logging
import os
import platform
import socket
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

import optuna
from optuna.trial import TrialState

from ..config import SearchConfig
from ..errors import UserError
from ..fileio import atomic_write_json, atomic_write_text
from ..racing import race
from ..scaling import coefficients_from_simplex, grid_candidates
from . import interrupts, queue
from .objective import CandidateFailed, Experiment
from .results import CandidateRecord, best_payload, candidate_records, coefficients_from_params, rows_to_csv
from .local_workers import LocalWorkers, cpu_cores, process_identity, trial_threads
from .storage import GRACE_SECONDS, HEARTBEAT_SECONDS, open_storage, redact_url, run_dir_lock

log = logging.getLogger("scalesearch.engine")


@dataclass
class RunResult:
    """What a finished (or interrupted) run leaves: the records, best.json's payload, and whether it is complete."""

    out_dir: Path
    records: list[CandidateRecord]
    best: dict | None
    complete: bool


def _mark_alive(trial: optuna.Trial) -> None:
    """Record the first heartbeat ourselves, then mark the trial alive (queue invariant I5).

    Optuna's heartbeat thread starts just before the objective; recording one here
    first means a trial with the mark always has a heartbeat for the stale check.
    """
    storage = trial.study._storage
    if callable(getattr(storage, "record_heartbeat", None)) and storage.get_heartbeat_interval():
        storage.record_heartbeat(trial._trial_id)
    trial.set_user_attr("alive", True)


def make_sampler(cfg: SearchConfig, nonce: int) -> optuna.samplers.BaseSampler:
    """A sampler seeded from --seed *and* a nonce that differs per trial and per worker.

    One fixed seed would make every worker, and every resumed run, replay the
    same draws; the nonce (trials so far, worker index) keeps a fresh single run
    reproducible while parallel and resumed ones draw new points.
    """
    seed = (cfg.seed * 1_000_003 + nonce) % (2**31 - 1)
    if cfg.mode == "grid":
        return optuna.samplers.RandomSampler(seed=seed)  # grid trials come from the queue; never used for them
    if cfg.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(5, cfg.trials))
    if cfg.sampler == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=min(3, cfg.trials))
    return optuna.samplers.RandomSampler(seed=seed)


def make_pruner(cfg: SearchConfig, epochs: int) -> optuna.pruners.BasePruner:
    """Pruners judge a candidate after each epoch but the last, so they need two epochs or more."""
    if cfg.pruner != "none" and epochs < 2:
        raise UserError(f"--pruner {cfg.pruner} needs 2 or more epochs (this proxy trains {epochs}): a pruner stops "
                        "a candidate between epochs; use --epochs 2 or --pruner none")
    if cfg.pruner == "median":
        # No warm-up steps: with a few epochs, waiting one would leave nothing to prune.
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)
    if cfg.pruner == "hyperband":
        # Resource = epochs done. With few epochs Hyperband has one bracket whose first rung is epoch 1.
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs, reduction_factor=3)
    return optuna.pruners.NopPruner()


def open_study(cfg: SearchConfig, exp: Experiment) -> optuna.Study:
    """Create or load the study; refuse (UserError, one line) to resume a study run differently."""
    storage = open_storage(cfg.storage_url)
    study = optuna.create_study(study_name=cfg.study_name, storage=storage, direction="maximize",
                                sampler=make_sampler(cfg, 0), pruner=make_pruner(cfg, exp.proxy.train.epochs),
                                load_if_exists=True)
    current = exp.identity()
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


def _grid_params(cfg: SearchConfig) -> list[dict]:
    return [{"alpha": c.alpha, "beta": c.beta} for c in grid_candidates(cfg.budget, cfg.step)]


def candidate_params(trials) -> dict[tuple, dict]:
    """Each candidate's exact parameters (from its first trial), by its queue identity."""
    out: dict[tuple, dict] = {}
    for t in sorted(trials, key=lambda t: t.number):
        params = queue.params_of(t)
        if params and queue.trial_outcome(t) != "stray":
            out.setdefault(queue.item_key(params, 0)[0], params)
    return out


_RACING_NOTE = "racing_note:"  # prefix of the study attributes that carry racing decisions


class Worker:
    """One worker's view of the study: what is wanted, what to evaluate, when to stop."""

    def __init__(self, cfg: SearchConfig, exp: Experiment, study: optuna.Study, worker_index: int = 0, *,
                 local: LocalWorkers | None = None):
        self.cfg, self.exp, self.study, self.worker_index = cfg, exp, study, worker_index
        self.cap = cfg.seed_cap(exp.proxy)
        self.local = local  # this machine's live workers of the run (None: no thread sizing)
        self.racing = cfg.seeds == "auto"
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

    # ------------------------------------------------------------ what the study should contain

    def _first_seed_params(self, trials) -> list[dict]:
        if self.cfg.mode == "grid":
            return _grid_params(self.cfg)
        # Sampled candidates: every non-stray seed-0 trial that got as far as its parameters.
        seen, out = set(), []
        for t in sorted(trials, key=lambda t: t.number):
            if queue.trial_outcome(t) != "stray" and t.params and int(t.user_attrs.get("seed", 0)) == 0:
                key = queue.item_key(queue.params_of(t), 0)
                if key not in seen:
                    seen.add(key)
                    out.append(queue.params_of(t))
        return out

    def wanted(self, trials) -> list[tuple[dict, int]]:
        """Every (params, seed) item this run must settle, as far as the study shows now."""
        items = [(p, 0) for p in self._first_seed_params(trials)]
        keys = {queue.item_key(p, s) for p, s in items}
        allowed = {k[0] for k in keys}
        for t in trials:  # items queued earlier (extra seeds, racing rounds) stay wanted until settled
            if queue.trial_outcome(t) == "stray" or "fixed_params" not in t.system_attrs:
                continue
            key = queue.key_of(t)
            if key[0] in allowed and key not in keys:
                keys.add(key)
                items.append((queue.params_of(t), key[1]))
        if not self.racing and self.cap > 1:
            params_of = candidate_params(trials)
            for rec in candidate_records(trials, self.cfg.budget):
                if 0 in rec.seed_accuracies:
                    params = params_of[rec.params_key]
                    items += [(params, s) for s in range(1, self.cap) if queue.item_key(params, s) not in keys]
        return items

    def first_pass_done(self, trials) -> bool:
        statuses = queue.item_statuses(trials)
        firsts = [queue.item_key(p, 0) for p in self._first_seed_params(trials)]
        if self.cfg.mode == "search" and len(firsts) < self.cfg.trials:
            return False
        return all(k in statuses and statuses[k].settled for k in firsts)

    def progress(self, trials) -> tuple[int, int]:
        """(settled, wanted) items, for the progress bar."""
        wanted = self.wanted(trials)
        statuses = queue.item_statuses(trials)
        total = max(len(wanted), self.cfg.trials if self.cfg.mode == "search" else 0)
        return queue.settled_count(statuses, [queue.item_key(p, s) for p, s in wanted]), total

    # ------------------------------------------------------------ evaluating one trial

    def describe(self) -> str:
        cfg = self.cfg
        return f"{len(_grid_params(cfg))} grid points" if cfg.mode == "grid" else f"{cfg.trials} trials with {cfg.sampler}"

    def candidate_for(self, trial: optuna.Trial, me) -> object:
        """What this trial evaluates (passed to the experiment's `evaluate`); a stray raises TrialPruned."""
        cfg = self.cfg
        if cfg.mode == "grid":
            if "fixed_params" not in me.system_attrs:
                return self._stray(trial, "not from the grid queue (another worker emptied it)")
            hi_a, hi_b = max(1.0, cfg.budget**0.5), max(1.0, cfg.budget**0.25)
            return coefficients_from_params({"alpha": trial.suggest_float("alpha", 1.0, hi_a),
                                             "beta": trial.suggest_float("beta", 1.0, hi_b)}, cfg.budget)
        return coefficients_from_simplex(trial.suggest_float("s1", 0.0, 1.0), trial.suggest_float("s2", 0.0, 1.0),
                                         cfg.budget)

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

    def objective(self, trial: optuna.Trial) -> float:
        _mark_alive(trial)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        identity = process_identity()
        if identity is not None:  # lets a worker on this machine fail the trial at once if this process dies
            trial.set_user_attr("process", identity)
        threads = self._size_threads()
        if threads is not None:
            trial.set_user_attr("threads", threads)
        study = self.study
        me = next(t for t in study.get_trials(deepcopy=False) if t.number == trial.number)
        c = self.candidate_for(trial, me)
        if "seed" not in me.user_attrs:
            trial.set_user_attr("seed", 0)
        if not queue.claim(study.get_trials(deepcopy=False), trial.number):
            return self._stray(trial, "duplicate of a live or finished trial")
        seed = int(me.user_attrs.get("seed", 0))
        try:
            return self.exp.evaluate(trial, c, seed)
        except (optuna.TrialPruned, CandidateFailed):
            raise
        except KeyboardInterrupt:
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

    # ------------------------------------------------------------ the loop

    def work(self, after_trial: Callable, log_line: Callable[[str], None]) -> None:
        study, cfg = self.study, self.cfg
        waited_note = 0.0
        while True:
            interrupts.checkpoint()  # a Ctrl-C pressed during a storage operation stops here
            queue.fail_stale_trials(study)
            if self.racing:
                self._show_others_racing_notes(log_line)
            trials = study.get_trials(deepcopy=False)
            with run_dir_lock(cfg.out_dir):  # one machine's workers never queue the same item twice
                queue.ensure_queued(study, self.wanted(trials))
            trials = study.get_trials(deepcopy=False)
            waiting = [t for t in trials if t.state == TrialState.WAITING]
            running = [t for t in trials if t.state == TrialState.RUNNING]
            sampled = len(self._first_seed_params(trials))
            sample_more = cfg.mode == "search" and sampled + sum(
                1 for t in running if not t.params) < cfg.trials
            if waiting or sample_more:
                study.sampler = make_sampler(cfg, len(trials) * 64 + self.worker_index)
                study.optimize(self.objective, n_trials=1, catch=(CandidateFailed,), callbacks=[after_trial])
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
            if self.racing and self.first_pass_done(trials):
                from .results import race_results

                rnd = race(race_results(candidate_records(trials, cfg.budget)), cap=self.cap, alpha=cfg.alpha)
                if rnd.next_items:
                    params_of = candidate_params(trials)
                    items = [(params_of[cand], seed) for cand, seed in rnd.next_items]
                    with run_dir_lock(cfg.out_dir):
                        added = queue.ensure_queued(study, items)
                    if added:
                        aside = (f" ({len(rnd.set_aside)} more within noise stay at their seeds: at most "
                                 f"{len(rnd.contenders)} race)" if rnd.set_aside else "")
                        self._post_racing_note(
                            f"racing: {len(rnd.contenders)} contender(s) not clearly behind the leader get "
                            f"seed(s) up to {max(s for _, s in rnd.next_items) + 1}{aside}", log_line)
                        continue
            break


def _premeasure(cfg: SearchConfig, exp: Experiment, worker: Worker, log_line: Callable[[str], None]) -> None:
    """On a GPU, budget-match the grid's open points on the host's spare cores before training starts.

    On the CPU the cores train, so candidates are matched one at a time as their trials come (as before).
    """
    from .peers import is_peer

    if cfg.mode != "grid" or getattr(getattr(exp, "device", None), "type", None) != "cuda" or cpu_cores() < 4 \
            or is_peer():  # a --jobs peer starts after the first worker matched everything (read from the cache)
        return
    statuses = queue.item_statuses(worker.study.get_trials(deepcopy=False))
    todo = [coefficients_from_params(p, cfg.budget) for p in _grid_params(cfg)
            if not (queue.item_key(p, 0) in statuses and statuses[queue.item_key(p, 0)].settled)]
    started = time.monotonic()
    processes = min(cpu_cores() - 1, 16)
    if exp.premeasure(todo, processes=processes):
        log_line(f"measured {len(todo)} grid point(s) in {time.monotonic() - started:.1f} s "
                 f"({processes} processes)")


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
            "flop_convention": "multiply-adds, fvcore, batch 1, eval mode"}


class Outputs:
    """trials.csv always; best.json once a candidate completed; both atomic, from the storage alone."""

    FILES = "trials.csv, best.json"

    def __init__(self, cfg: SearchConfig, exp: Experiment):
        self.cfg = cfg
        # Computed once per run: provenance hashes nothing, but the data fingerprint behind it did.
        self.extra = {"study": cfg.study_name, "storage": redact_url(cfg.storage_url), "mode": cfg.mode,
                      "seeds_policy": cfg.seeds_label(exp.proxy), "provenance": provenance(exp)}

    def write(self, study: optuna.Study, complete: bool) -> tuple[list[CandidateRecord], dict | None]:
        cfg = self.cfg
        records = candidate_records(study.get_trials(deepcopy=False), cfg.budget)
        atomic_write_text(cfg.out_dir / "trials.csv", rows_to_csv(records))
        best = best_payload(records, budget=cfg.budget, tolerance=cfg.tolerance, alpha=cfg.alpha, complete=complete,
                            extra=self.extra)
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
    worker_cls: type = Worker,
    outputs_cls: type = Outputs,
    on_open: Callable[[Path], Iterable[int] | None] | None = None,
) -> RunResult:
    """Run (or resume) the study until every wanted item is settled.

    `worker_cls` and `outputs_cls` say what the study holds and what files it leaves (grid and sampler
    runs by default; `compare` passes its own). `on_open` is called once the study is open and its queue
    filled, before any training, with the out directory (`--jobs` starts its extra workers there). On
    Ctrl-C the outputs are written from the storage before KeyboardInterrupt propagates.
    """
    # Ctrl-C stops between storage operations, never inside one; this machine's workers count each other.
    with interrupts.deferring(), LocalWorkers(cfg.out_dir) as local:
        return _run_study(cfg, exp, on_trial=on_trial, log_line=log_line, on_progress=on_progress,
                          worker_index=worker_index, worker_cls=worker_cls, outputs_cls=outputs_cls, local=local,
                          on_open=on_open)


def _run_study(cfg, exp, *, on_trial, log_line, on_progress, worker_index, worker_cls, outputs_cls, local,
               on_open) -> RunResult:
    with run_dir_lock(cfg.out_dir):
        # Serialises this machine's workers while they create the schema and fill the queue.
        study = open_study(cfg, exp)  # refuses a changed experiment before anything is said or trained
        for note in [f"writing to {cfg.out_dir}/ ({outputs_cls.FILES}); storage "
                     f"{redact_url(cfg.storage_url) if cfg.storage else 'study.db'}", *exp.notes]:
            log_line(note)
        queue.fail_stale_trials(study)
        worker = worker_cls(cfg, exp, study, worker_index, local=local)
        trials = study.get_trials(deepcopy=False)
        before = queue.item_statuses(trials)
        added = queue.ensure_queued(study, worker.wanted(trials))
    done, total = worker.progress(study.get_trials(deepcopy=False))
    requeued = sum(1 for s in before.values() if s.outcome == "open")
    log_line(f"study {cfg.study_name}: {worker.describe()}; {done} item(s) already settled, {added} queued"
             + (f" ({requeued} interrupted re-queued)" if requeued else ""))
    if on_progress is not None:
        on_progress(done, total)
    _premeasure(cfg, exp, worker, log_line)
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
        statuses = queue.item_statuses(trials)
        wanted = [queue.item_key(p, s) for p, s in worker.wanted(trials)]
        complete = worker.first_pass_done(trials) and queue.settled_count(statuses, wanted) == len(wanted)
    finally:
        # Also on Ctrl-C and crashes: the files always reflect what the storage holds.
        records, best = outputs.write(study, complete=complete)
    return RunResult(cfg.out_dir, records, best, complete)
