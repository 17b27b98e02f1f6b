"""Coefficient search on Optuna: a grid of (α, β) or a sampler on the budget simplex.

The Optuna storage is the single source of truth: every candidate is a trial,
rejected ones included, and trials.csv / best.json are rewritten (atomically)
from it after every trial. Resume = run the same command again: finished
trials are kept, trials interrupted by Ctrl-C or a crash are queued again, and
trials of a killed process are detected through the storage heartbeat.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import optuna
from optuna.trial import TrialState

from .config import SearchConfig
from .errors import UserError
from .fileio import atomic_write_json, atomic_write_text
from .scaling import Coefficients, coefficients_from_simplex, grid_candidates

log = logging.getLogger("scalesearch.search")

HEARTBEAT_SECONDS = 5
GRACE_SECONDS = 20  # a RUNNING trial silent this long belongs to a dead process

TRIAL_COLUMNS = ("trial", "state", "alpha", "beta", "gamma", "depth_mult", "width_mult", "resolution", "flops",
                 "flops_ratio", "params", "accuracy", "accuracy_std", "seeds", "seed_accuracies", "test_accuracy",
                 "seconds", "reason")


class CandidateFailed(Exception):
    """Training ended without a usable accuracy (diverged, out of memory): a final, recorded outcome."""


# ---------------------------------------------------------------- storage


def _sqlite_begin_immediate(engine) -> None:
    """Make every SQLite transaction take the write lock up front.

    SQLite ignores SELECT ... FOR UPDATE, so two processes could pop the same
    queued trial; BEGIN IMMEDIATE serialises them (NOTES.md: 30/30 exact).
    """
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # let us issue BEGIN ourselves

    @event.listens_for(engine, "begin")
    def _begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections opened before the hooks must not be reused


def open_storage(url: str) -> optuna.storages.RDBStorage:
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    import warnings

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeat API
    for attempt in range(4):
        try:
            storage = RDBStorage(
                url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3),
            )
            break
        except Exception as exc:  # bad URL, unknown driver, unreachable server, wrong password
            text = str(exc)
            # Workers that start together on a new database race to create its schema: try again.
            if attempt < 3 and any(k in text for k in ("UNIQUE", "duplicate key", "already exists", "locked")):
                time.sleep(0.5 + attempt)
                continue
            first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
            raise UserError(f"--storage: cannot open {_redact(url)}: {first}") from None
    if url.startswith("sqlite"):
        _sqlite_begin_immediate(storage.engine)
    return storage


def _redact(url: str) -> str:
    """Hide a password in a database URL before printing it."""
    import re

    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


# ---------------------------------------------------------------- the experiment


@dataclass
class Experiment:
    """What every trial of one run shares: config, proxy, data on the host, baseline cost."""

    config: SearchConfig
    proxy: "object"
    data: "object"
    device: "object"
    base_flops: int
    seeds: int
    _splits_cache: tuple | None = None

    @classmethod
    def prepare(cls, config: SearchConfig, log_line: Callable[[str], None] = log.info) -> "Experiment":
        from .cost import measure_cost
        from .data import load_data
        from .proxy import proxy_for
        from .train import resolve_device

        device = resolve_device(config.device)
        proxy = proxy_for(device.type).with_overrides(epochs=config.epochs)
        data = load_data(config.data, seed=config.seed, image_size=proxy.image_size,
                         synthetic_sizes=proxy.synthetic_sizes)
        base = measure_cost(config.family, proxy.width_mult, proxy.depth_mult, proxy.resolution, data.num_classes)
        seeds = config.seeds or proxy.seeds
        log_line(f"data {data.name}: {len(data.train_labels)} train / {len(data.val_labels)} val images, "
                 f"{data.num_classes} classes, fingerprint {data.fingerprint}")
        log_line(f"proxy ({proxy.name}): width {proxy.width_mult:g}, depth {proxy.depth_mult:g}, "
                 f"{proxy.resolution}px = {base.flops / 1e6:.2f} M multiply-adds; {proxy.train.epochs} epochs, "
                 f"{seeds} seed(s) per candidate on {device.type}")
        return cls(config, proxy, data, device, base.flops, seeds)

    def splits(self, resolution: int):
        from .train import to_device

        if self._splits_cache is None or self._splits_cache[0] != resolution:
            self._splits_cache = None  # free the previous resolution's tensors first
            self._splits_cache = (resolution, to_device(self.data, resolution, self.device))
        return self._splits_cache[1]

    def evaluate(self, trial: optuna.Trial, c: Coefficients) -> float:
        from .cost import measure_cost
        from .train import build_and_train

        cfg = self.config
        depth, width, resolution = self.proxy.scaled(c)
        cost = measure_cost(cfg.family, width, depth, resolution, self.data.num_classes)
        ratio = cost.flops / self.base_flops
        for key, value in dict(alpha=c.alpha, beta=c.beta, gamma=c.gamma, depth_mult=depth, width_mult=width,
                               resolution=resolution, flops=cost.flops, flops_ratio=ratio,
                               params=cost.params).items():
            trial.set_user_attr(key, value)
        lo, hi = cfg.budget * (1 - cfg.tolerance), cfg.budget * (1 + cfg.tolerance)
        if not lo <= ratio <= hi:
            reason = (f"rejected: measured FLOP ratio {ratio:.3f} outside {cfg.budget:g}x ±{cfg.tolerance:.0%} "
                      f"[{lo:.3f}, {hi:.3f}]")
            trial.set_user_attr("reason", reason)
            trial.set_user_attr("outcome", "rejected")
            raise optuna.TrialPruned(reason)

        splits = self.splits(resolution)
        accuracies, tests, seconds = [], [], 0.0
        for seed_index in range(self.seeds):
            def on_epoch(epoch: int, acc: float, _first=seed_index == 0) -> bool:
                if not _first or cfg.pruner == "none":
                    return False
                trial.report(acc, epoch)
                return trial.should_prune()

            result = build_and_train(cfg.family, width, depth, splits, self.data.num_classes, self.proxy.train,
                                     seed=cfg.seed * 1000 + seed_index, on_epoch=on_epoch)
            seconds += result.seconds
            trial.set_user_attr("seconds", seconds)
            if result.status == "pruned":
                trial.set_user_attr("reason", result.reason)
                trial.set_user_attr("outcome", "pruned")
                raise optuna.TrialPruned(result.reason)
            if result.status != "ok":
                trial.set_user_attr("reason", f"{result.status}: {result.reason}")
                trial.set_user_attr("outcome", result.status)
                raise CandidateFailed(result.reason)
            accuracies.append(result.accuracy)
            if result.test_accuracy is not None:
                tests.append(result.test_accuracy)
        mean = statistics.fmean(accuracies)
        trial.set_user_attr("seed_accuracies", accuracies)
        trial.set_user_attr("accuracy_std", statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0)
        trial.set_user_attr("test_accuracy", statistics.fmean(tests) if tests else None)
        trial.set_user_attr("seeds", len(accuracies))
        trial.set_user_attr("outcome", "complete")
        return mean


# ---------------------------------------------------------------- study bookkeeping


def trial_outcome(t: optuna.trial.FrozenTrial) -> str:
    """complete / rejected / pruned / diverged / oom / interrupted / running / waiting."""
    if t.state == TrialState.COMPLETE:
        return "complete"
    if t.state in (TrialState.RUNNING, TrialState.WAITING):
        return t.state.name.lower()
    outcome = t.user_attrs.get("outcome")
    if t.state == TrialState.PRUNED:
        return outcome or "pruned"
    return outcome if outcome in ("diverged", "oom", "failed") else "interrupted"


FINAL = {"complete", "rejected", "pruned", "diverged", "oom", "failed"}


def _key(params: dict) -> tuple:
    return tuple(sorted((k, round(float(v), 9)) for k, v in params.items()))


def _params_of(t: optuna.trial.FrozenTrial) -> dict:
    """The candidate a trial stands for: its queued parameters, else what it has suggested so far."""
    return t.system_attrs.get("fixed_params") or t.params


def requeue_interrupted(study: optuna.Study) -> int:
    """Queue again every candidate whose only trials were interrupted (Ctrl-C, crash)."""
    trials = study.get_trials(deepcopy=False)
    settled = {_key(_params_of(t)) for t in trials if trial_outcome(t) in FINAL | {"running", "waiting"}}
    queued = 0
    for t in trials:
        key = _key(_params_of(t))
        if trial_outcome(t) == "interrupted" and key not in settled and t.params:
            study.enqueue_trial(t.params)
            settled.add(key)
            queued += 1
    return queued


def _claim(study: optuna.Study, trial: optuna.Trial, queue_only: bool) -> bool:
    """May this worker evaluate `trial`? False for a duplicate or (grid) a trial not from the queue.

    Workers that start at the same moment may queue the same candidate twice; the
    copy with the lowest trial number is the one that counts, so a later copy
    finding an earlier live or finished twin steps aside. This holds across machines.
    """
    trials = study.get_trials(deepcopy=False)
    me = next((t for t in trials if t.number == trial.number), None)
    if me is None:
        return False
    fixed = me.system_attrs.get("fixed_params")
    if fixed is None:
        return not queue_only
    key = _key(fixed)
    for t in trials:
        if t.number < me.number and _key(_params_of(t)) == key and not t.user_attrs.get("stray") \
                and trial_outcome(t) != "interrupted":
            return False
    return True


# ---------------------------------------------------------------- outputs


def trial_rows(study: optuna.Study) -> list[dict]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get("stray"):
            continue
        u = t.user_attrs
        row = {c: u.get(c) for c in TRIAL_COLUMNS}
        params = _params_of(t)
        row.update(trial=t.number, state=trial_outcome(t), accuracy=t.value if t.state == TrialState.COMPLETE else None,
                   seeds=u.get("seeds"), reason=u.get("reason", ""))
        if row["alpha"] is None and set(params) in ({"alpha", "beta"}, {"s1", "s2"}):  # queued, not started
            c = _coefficients_from_params(params, study.user_attrs.get("budget", 2.0))
            row.update(alpha=c.alpha, beta=c.beta, gamma=c.gamma)
        if row["seed_accuracies"] is not None:
            row["seed_accuracies"] = " ".join(f"{a:.4f}" for a in row["seed_accuracies"])
        rows.append(row)
    return rows


def _coefficients_from_params(params: dict, budget: float) -> Coefficients:
    if "s1" in params:
        return coefficients_from_simplex(params["s1"], params["s2"], budget)
    from .scaling import gamma_for_budget

    return Coefficients(params["alpha"], params["beta"], max(1.0, gamma_for_budget(params["alpha"], params["beta"],
                                                                                  budget)))


def rows_to_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=TRIAL_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if v is None else v) for k, v in r.items()})
    return buf.getvalue()


def paired_comparison(winner: dict, runner_up: dict | None) -> dict | None:
    """Winner vs runner-up on the same seeds: is the win bigger than seed noise?"""
    if runner_up is None:
        return None
    w = [float(a) for a in str(winner["seed_accuracies"]).split()]
    r = [float(a) for a in str(runner_up["seed_accuracies"]).split()]
    diffs = [a - b for a, b in zip(w, r)]
    out = {"runner_up_trial": runner_up["trial"], "runner_up_accuracy": runner_up["accuracy"],
           "runner_up": {k: runner_up[k] for k in ("alpha", "beta", "gamma")},
           "seed_differences": diffs, "mean_difference": statistics.fmean(diffs),
           "seeds_won": sum(d > 0 for d in diffs), "seeds": len(diffs)}
    if len(diffs) >= 2:
        sd = statistics.stdev(diffs)
        out["difference_std"] = sd
        out["t_statistic"] = out["mean_difference"] / (sd / math.sqrt(len(diffs))) if sd > 0 else None
        out["verdict"] = (f"winner ahead on {out['seeds_won']}/{len(diffs)} seeds, mean +{out['mean_difference']:.4f}"
                          + (f", paired t = {out['t_statistic']:.2f}" if out["t_statistic"] is not None else ""))
    else:
        out["verdict"] = "one seed only: the margin cannot be told from seed noise (use --seeds 2 or more)"
    return out


def provenance(exp: Experiment) -> dict:
    import torch
    import typer

    from . import __version__

    versions = {"scalesearch": __version__, "torch": torch.__version__, "optuna": optuna.__version__,
                "typer": typer.__version__, "python": platform.python_version()}
    try:
        from importlib.metadata import version

        versions["fvcore"] = version("fvcore")
    except Exception:  # noqa: BLE001 - provenance is best effort
        pass
    device = str(exp.device)
    if exp.device.type == "cuda":
        device += f" ({torch.cuda.get_device_name(exp.device)})"
    else:
        device += f" ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
    return {"versions": versions, "device": device, "data": exp.data.describe(),
            "proxy": {"name": exp.proxy.name, "width_mult": exp.proxy.width_mult,
                      "depth_mult": exp.proxy.depth_mult, "resolution": exp.proxy.resolution,
                      "train": exp.proxy.train.__dict__},
            "command_line": exp.config.command_line, "config": exp.config.to_dict(),
            "flop_convention": "multiply-adds, fvcore, batch 1, eval mode"}


def write_outputs(study: optuna.Study, exp: Experiment) -> dict | None:
    """trials.csv always; best.json once a candidate completed. Both written atomically."""
    out = exp.config.out_dir
    rows = trial_rows(study)
    atomic_write_text(out / "trials.csv", rows_to_csv(rows))
    done = sorted((r for r in rows if r["state"] == "complete"), key=lambda r: r["accuracy"], reverse=True)
    if not done:
        return None
    best = done[0]
    cfg = exp.config
    payload = {
        "alpha": best["alpha"], "beta": best["beta"], "gamma": best["gamma"], "budget": cfg.budget,
        "flops_factor": best["alpha"] * best["beta"] ** 2 * best["gamma"] ** 2,
        "accuracy": best["accuracy"], "accuracy_std": best["accuracy_std"], "test_accuracy": best["test_accuracy"],
        "seeds": best["seeds"], "seed_accuracies": [float(a) for a in str(best["seed_accuracies"]).split()],
        "trial": best["trial"], "measured_flops_ratio": best["flops_ratio"], "tolerance": cfg.tolerance,
        "resolution": best["resolution"], "depth_mult": best["depth_mult"], "width_mult": best["width_mult"],
        "completed_trials": len(done), "trials": len(rows),
        "comparison": paired_comparison(best, done[1] if len(done) > 1 else None),
        "study": cfg.study_name, "storage": _redact(cfg.storage_url), "mode": cfg.mode,
        "provenance": provenance(exp),
    }
    atomic_write_json(out / "best.json", payload)
    return payload


# ---------------------------------------------------------------- running a study


def _sampler(cfg: SearchConfig) -> optuna.samplers.BaseSampler:
    if cfg.mode == "grid":
        # Grid trials all come from the queue; this sampler only ever sees a stray trial.
        return optuna.samplers.RandomSampler(seed=cfg.seed)
    if cfg.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=cfg.seed, n_startup_trials=min(5, cfg.trials))
    if cfg.sampler == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=cfg.seed, n_startup_trials=min(3, cfg.trials))
    return optuna.samplers.RandomSampler(seed=cfg.seed)


def _pruner(cfg: SearchConfig, epochs: int) -> optuna.pruners.BasePruner:
    if cfg.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    if cfg.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=epochs)
    return optuna.pruners.NopPruner()


def open_study(cfg: SearchConfig, epochs: int) -> optuna.Study:
    cfg.out_dir.mkdir(parents=True, exist_ok=True)
    storage = open_storage(cfg.storage_url)
    study = optuna.create_study(study_name=cfg.study_name, storage=storage, direction="maximize",
                                sampler=_sampler(cfg), pruner=_pruner(cfg, epochs), load_if_exists=True)
    saved = study.user_attrs.get("budget")
    if saved is not None and not math.isclose(saved, cfg.budget):
        raise UserError(f"study {cfg.study_name!r} was run with budget {saved:g}x, not {cfg.budget:g}x: "
                        "use another --study or --out")
    study.set_user_attr("budget", cfg.budget)
    study.set_user_attr("mode", cfg.mode)
    return study


@contextlib.contextmanager
def _run_dir_lock(out_dir: Path):
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / ".lock", "w") as handle:
        try:
            import fcntl

            fcntl.flock(handle, fcntl.LOCK_EX)
        except ImportError:  # Windows: no flock; the duplicate check in _claim still applies
            pass
        yield


def enqueue_grid(study: optuna.Study, cfg: SearchConfig) -> int:
    """Queue each grid point that has no trial yet (exactly once, also across restarts)."""
    have = {_key(_params_of(t)) for t in study.get_trials(deepcopy=False)}
    added = 0
    for c in grid_candidates(cfg.budget, cfg.step):
        params = {"alpha": c.alpha, "beta": c.beta}
        if _key(params) not in have:
            study.enqueue_trial(params)
            added += 1
    return added


def planned_total(cfg: SearchConfig) -> int:
    """Candidates the run will settle: every grid point, or --trials."""
    if cfg.mode == "grid":
        return len(grid_candidates(cfg.budget, cfg.step))
    return cfg.trials


def finished_count(study: optuna.Study) -> int:
    return sum(trial_outcome(t) in FINAL for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("stray"))


def run_study(
    cfg: SearchConfig,
    exp: Experiment,
    on_trial: Callable[[dict], None] | None = None,
    log_line: Callable[[str], None] = log.info,
    on_start: Callable[[int], None] | None = None,
) -> dict | None:
    """Run (or resume) the study until every planned candidate is settled; return best.json's payload.

    On Ctrl-C the outputs are written from the storage before KeyboardInterrupt propagates.
    """
    with _run_dir_lock(cfg.out_dir):
        # Serialises workers on this machine while they create the schema and fill the queue.
        study = open_study(cfg, exp.proxy.train.epochs)
        optuna.storages.fail_stale_trials(study)
        requeued = requeue_interrupted(study)
        added = enqueue_grid(study, cfg) if cfg.mode == "grid" else 0
    if cfg.mode == "grid":
        log_line(f"study {cfg.study_name}: {planned_total(cfg)} grid points, {added} newly queued, "
                 f"{requeued} interrupted re-queued, {finished_count(study)} already done")
    else:
        log_line(f"study {cfg.study_name}: {cfg.trials} trials with {cfg.sampler}, {finished_count(study)} done, "
                 f"{requeued} interrupted re-queued")
    if on_start is not None:
        on_start(finished_count(study))
    grid_ranges = (1.0, max(1.0, cfg.budget**0.5)), (1.0, max(1.0, cfg.budget**0.25))

    def objective(trial: optuna.Trial) -> float:
        if not _claim(study, trial, queue_only=cfg.mode == "grid"):
            # A duplicate, or another worker emptied the grid queue between our check and the pop.
            trial.set_user_attr("stray", True)
            raise optuna.TrialPruned("duplicate or unqueued trial")
        if cfg.mode == "grid":
            alpha = trial.suggest_float("alpha", *grid_ranges[0])
            beta = trial.suggest_float("beta", *grid_ranges[1])
            c = _coefficients_from_params({"alpha": alpha, "beta": beta}, cfg.budget)
        else:
            c = coefficients_from_simplex(trial.suggest_float("s1", 0.0, 1.0), trial.suggest_float("s2", 0.0, 1.0),
                                          cfg.budget)
        return exp.evaluate(trial, c)

    def after_trial(study: optuna.Study, frozen: optuna.trial.FrozenTrial) -> None:
        write_outputs(study, exp)
        if on_trial is not None and not frozen.user_attrs.get("stray"):
            on_trial({"trial": frozen.number, "state": trial_outcome(frozen), "value": frozen.value,
                      **frozen.user_attrs, "finished": finished_count(study)})

    try:
        _work_until_settled(study, cfg, objective, after_trial, log_line)
    finally:
        # Also on Ctrl-C and crashes: the files always reflect what the storage holds.
        best = write_outputs(study, exp)
    return best


def _work_until_settled(study, cfg, objective, after_trial, log_line) -> None:
    while True:
        waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        sample_more = cfg.mode == "search" and finished_count(study) + len(waiting) + len(running) < cfg.trials
        if waiting or sample_more:
            study.optimize(objective, n_trials=1, catch=(CandidateFailed,), callbacks=[after_trial])
            continue
        if not running:
            break
        # Trials still RUNNING belong to other workers, or to a killed process whose heartbeat
        # will go stale; then they are failed and re-queued, and we pick them up here.
        log_line(f"waiting for {len(running)} running trial(s) of other or killed workers")
        time.sleep(HEARTBEAT_SECONDS)
        optuna.storages.fail_stale_trials(study)
