"""`compare` as one function, which the command line and the Python API both call: the arms of a run's winner
(or of the paper's coefficients) trained with paired seeds in the run's storage, and their verdicts."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from ..config import SearchConfig, WorkerOptions
from ..errors import UserError
from ..scaling import check_budget

if TYPE_CHECKING:
    from ..engine.run import RunResult

log = logging.getLogger("scalesearch")
_DEFAULT, _WORKERS = SearchConfig(mode="grid"), WorkerOptions()  # every option's default, as the commands have it


def compare(*, from_run: str | Path | None = None, budget: float | None = None, phi: float = 1.0,
            seeds: int | None = None, data: str | None = None, epochs: int | None = None, device: str | None = None,
            out: str | Path | None = None, storage: str | None = None, seed: int | None = None,
            family: str | None = None, tolerance: float | None = None, significance: float = _DEFAULT.significance,
            skip_bad_images: bool = False, threads: int | None = None, jobs: int | str = _WORKERS.jobs,
            devices: list[int] | None = None, jobs_per_device: int = _WORKERS.jobs_per_device, cost: str | None = None,
            latency_device: str | None = None, latency_batch: int | None = None, train_images: int | None = None,
            val_images: int | None = None, **callbacks) -> RunResult:
    """`scalesearch compare`: compound scaling against depth-, width- and resolution-only at one measured budget.

    With `from_run`, the compound arm is that run's winner and everything that decides what a trial
    measures (budget, tolerance, data, epochs, family, seed) is the run's; its study storage holds the
    comparison too. Without it, the paper's coefficients moved onto `budget` (default 2) are compared.
    `cost` (default: the run's metric, else flops) is the metric every arm is brought to: compare a FLOP
    run's winner at the same latency to see whether the compound rule still wins there.
    `jobs` as for `grid`. Options left None take the run's value with `from_run`, else grid's default.
    """
    kwargs = {k: v for k, v in locals().items() if k != "callbacks"}
    from ..engine.peers import run_call
    from ..engine.run import run_callbacks, run_study
    from .study import CompareExperiment, CompareSetup, output_suffix, paper_compound, read_run, setup_from_run

    if not (phi > 0):
        raise UserError(f"--phi must be > 0, got {phi:g}")
    if seeds is not None and seeds < 1:
        raise UserError(f"--seeds must be >= 1, got {seeds}")
    suffix = "" if phi == 1 else f"-phi{phi:g}"
    command_line = callbacks.get("command_line", "")
    if from_run is not None:
        fixed = {"--budget": budget, "--data": data, "--epochs": epochs, "--seed": seed, "--family": family,
                 "--tolerance": tolerance, "--train-images": train_images, "--val-images": val_images}
        given = [name for name, value in fixed.items() if value is not None]
        if given:
            raise UserError(f"compare --from uses the run's budget, tolerance, data (and its subset), epochs, family "
                            f"and seed: drop {', '.join(given)}")
        run, records = read_run(from_run, storage=storage)
        setup = setup_from_run(run, records, phi=phi, seeds=seeds)
        run_metric, run_cfg = run.metric, {**run.config, "storage": storage or run.config.get("storage")}
        by_cost = output_suffix(cost or run_metric.name)
        cfg = SearchConfig(mode="compare", budget=run.budget, tolerance=run.tolerance,
                           cost=cost or run_metric.name,
                           latency_device=latency_device or run_metric.latency_device,
                           latency_batch=latency_batch if latency_batch is not None else (
                               run_metric.latency_batch if run_metric.name == "latency" else None),
                           seeds=len(setup.seeds), data=str(run_cfg["data"]), epochs=run_cfg.get("epochs"),
                           device=device or run_cfg.get("device", _DEFAULT.device),
                           out=Path(out) if out is not None else Path(from_run), storage=run_cfg.get("storage"),
                           study=f"{run.study}-compare{by_cost}{suffix}", seed=int(run_cfg.get("seed", _DEFAULT.seed)),
                           family=str(run_cfg.get("family", _DEFAULT.family)), significance=significance,
                           skip_bad_images=bool(run_cfg.get("skip_bad_images")) or skip_bad_images,
                           threads=threads if threads is not None else run_cfg.get("threads"),
                           train_images=run_cfg.get("train_images"), val_images=run_cfg.get("val_images"),
                           image_column=run_cfg.get("image_column"), label_column=run_cfg.get("label_column"),
                           **{k: run_cfg.get(k) for k in ("proxy_width", "proxy_depth", "proxy_resolution",
                                                          "batch_size", "lr")},
                           command_line=command_line)
    else:
        budget = _DEFAULT.budget if budget is None else budget
        by_cost = output_suffix(cost or _DEFAULT.cost)
        try:
            check_budget(budget)
        except ValueError as exc:
            raise UserError(f"--{exc}") from None
        setup = CompareSetup(compound=paper_compound(budget), phi=phi, seeds=tuple(range(seeds or 3)),
                             source="the EfficientNet paper's (1.2, 1.1, 1.15), moved onto the budget")
        cfg = SearchConfig(mode="compare", budget=budget, tolerance=_DEFAULT.tolerance if tolerance is None else tolerance,
                           cost=cost or _DEFAULT.cost, latency_device=latency_device or _DEFAULT.latency_device,
                           latency_batch=latency_batch, seeds=len(setup.seeds), data=data or _DEFAULT.data,
                           epochs=epochs, device=device or _DEFAULT.device,
                           out=Path(out) if out is not None else Path("runs") / f"compare-{budget:g}x{by_cost}",
                           storage=storage, study=f"scalesearch-compare-{budget:g}x{by_cost}{suffix}",
                           seed=_DEFAULT.seed if seed is None else seed, family=family or _DEFAULT.family,
                           significance=significance,
                           skip_bad_images=skip_bad_images, threads=threads, train_images=train_images,
                           val_images=val_images, command_line=command_line)
    cfg = cfg.validated()
    given = run_callbacks(callbacks)

    def run(on_open):
        exp = CompareExperiment.prepare_compare(cfg, setup)
        # RunResult.best is compare.json's payload; records are the arms.
        return run_study(cfg, exp, on_open=on_open, log_line=given.pop("log_line", None) or log.info, **given)

    workers = WorkerOptions(jobs=jobs, devices=devices, jobs_per_device=jobs_per_device).for_cost(cfg.cost)
    return run_call("compare", kwargs, run, workers=workers.validated(device=cfg.device), device=cfg.device,
                    threads=cfg.threads, callbacks=callbacks)
