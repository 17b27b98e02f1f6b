"""The public Python API; it mirrors the command line, which is a thin layer over it.

    import scalesearch
    result = scalesearch.grid(budget=2.0, out="runs/my-grid")        # RunResult
    print(result.best["alpha"], result.best["verdict"]["text"])
    members = scalesearch.expand(alpha=1.2, beta=1.1, gamma=1.15, phis=range(1, 8))

Bad options raise `scalesearch.UserError` (a ValueError) before any work starts.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Iterable

from .config import SearchConfig
from .errors import UserError
from .engine.run import RunResult

log = logging.getLogger("scalesearch")


def run_search(
    config: SearchConfig,
    *,
    on_trial: Callable[[dict], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    log_line: Callable[[str], None] | None = None,
    worker_index: int = 0,
) -> RunResult:
    """Validate `config`, prepare data and proxy, and run (or resume) its study to the end."""
    from .engine.objective import Experiment
    from .engine.run import run_study
    from .engine.storage import open_storage

    cfg = config.validated()
    say = log_line or log.info
    if cfg.storage:
        open_storage(cfg.storage)  # an unreachable or malformed URL fails here, before any data or training
    exp = Experiment.prepare(cfg)
    return run_study(cfg, exp, on_trial=on_trial, log_line=say, on_progress=on_progress, worker_index=worker_index)


def grid(*, budget: float = 2.0, step: float = 0.05, tolerance: float = 0.1, seeds: int | str = "auto",
         data: str = "synthetic", epochs: int | None = None, device: str = "auto", out: str | Path | None = None,
         storage: str | None = None, study: str | None = None, seed: int = 0, family: str = "efficientnet",
         alpha: float = 0.05, skip_bad_images: bool = False, **callbacks) -> RunResult:
    """`scalesearch grid`: α and β on a grid, γ from the budget, every candidate budget-matched and trained."""
    cfg = SearchConfig(mode="grid", budget=budget, step=step, tolerance=tolerance, seeds=seeds, data=str(data),
                       epochs=epochs, device=device, out=Path(out) if out is not None else None, storage=storage,
                       study=study, seed=seed, family=family, alpha=alpha, skip_bad_images=skip_bad_images,
                       command_line=callbacks.pop("command_line", ""))
    return run_search(cfg, **callbacks)


def search(*, budget: float = 2.0, trials: int = 20, sampler: str = "tpe", pruner: str = "none",
           tolerance: float = 0.1, seeds: int | str = "auto", data: str = "synthetic", epochs: int | None = None,
           device: str = "auto", out: str | Path | None = None, storage: str | None = None, study: str | None = None,
           seed: int = 0, family: str = "efficientnet", alpha: float = 0.05, skip_bad_images: bool = False,
           **callbacks) -> RunResult:
    """`scalesearch search`: an Optuna sampler on the simplex α·β²·γ² = budget."""
    cfg = SearchConfig(mode="search", budget=budget, trials=trials, sampler=sampler, pruner=pruner,
                       tolerance=tolerance, seeds=seeds, data=str(data), epochs=epochs, device=device,
                       out=Path(out) if out is not None else None, storage=storage, study=study, seed=seed,
                       family=family, alpha=alpha, skip_bad_images=skip_bad_images,
                       command_line=callbacks.pop("command_line", ""))
    return run_search(cfg, **callbacks)


def expand(*, alpha: float | None = None, beta: float | None = None, gamma: float | None = None,
           from_run: str | Path | None = None, preset: str | None = None, phis: Iterable[int] = range(0, 8),
           family: str = "efficientnet", base_resolution: int | None = None, num_classes: int = 1000,
           resolution_multiple: int = 8, match_budget: bool = False,
           on_member: Callable[[str], None] | None = None):
    """`scalesearch expand`: coefficients (given, from a run, or the paper's) or a preset -> measured members."""
    from .expansion import PRESET_COEFFICIENTS, expand_family, expand_preset
    from .sources import resolve_coefficients

    phis = list(phis)
    if preset is not None:
        if any(v is not None for v in (alpha, beta, gamma, from_run)):
            raise UserError("--preset takes the published table: drop --alpha/--beta/--gamma/--from")
        if preset not in PRESET_COEFFICIENTS:
            raise UserError(f"unknown preset {preset!r}; known: {', '.join(PRESET_COEFFICIENTS)}")
        return expand_preset(preset, phis, num_classes=num_classes, on_member=on_member)
    source = resolve_coefficients(alpha, beta, gamma, Path(from_run) if from_run is not None else None)
    return expand_family(source.coefficients, phis, family=family, base_resolution=base_resolution,
                         num_classes=num_classes, resolution_multiple=resolution_multiple,
                         match_budget=match_budget, on_member=on_member)
