"""Where `expand` takes its coefficients from: options, a run's best.json, or the paper."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from ..rundir import RunDirectory, read_run_dir
from ..scaling import PAPER_ALPHA, PAPER_BETA, PAPER_GAMMA, Coefficients

DEFAULT_RUNS_DIR = Path("runs")


@dataclass(frozen=True)
class CoefficientSource:
    coefficients: Coefficients
    description: str  # said to the user: where the numbers came from
    run: RunDirectory | None = None  # the run they come from (its family, metric, intervals, completeness)


def read_best_json(path: Path) -> CoefficientSource:
    run = read_run_dir(path, study=False)
    return CoefficientSource(run.coefficients, f"the winner in {run.best_json}", run)


def latest_best_json(runs_dir: Path = DEFAULT_RUNS_DIR) -> Path | None:
    """The most recently written best.json directly under runs_dir/*/."""
    if not runs_dir.is_dir():
        return None
    found = sorted(runs_dir.glob("*/best.json"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def coefficients_from_options(alpha: float | None, beta: float | None, gamma: float | None) -> Coefficients | None:
    """--alpha/--beta/--gamma as typed: None when none is given, UserError when only some are, or they do not
    all lie on one side of 1."""
    given = [v is not None for v in (alpha, beta, gamma)]
    if not any(given):
        return None
    if not all(given):
        raise UserError("--alpha, --beta and --gamma go together: give all three")
    try:
        return Coefficients(alpha, beta, gamma)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def resolve_coefficients(
    alpha: float | None,
    beta: float | None,
    gamma: float | None,
    from_path: Path | None,
    runs_dir: Path = DEFAULT_RUNS_DIR,
) -> CoefficientSource:
    if any(v is not None for v in (alpha, beta, gamma)) and from_path is not None:
        raise UserError("give either --alpha/--beta/--gamma or --from, not both")
    coeffs = coefficients_from_options(alpha, beta, gamma)
    if coeffs is not None:
        return CoefficientSource(coeffs, "--alpha/--beta/--gamma")
    if from_path is not None:
        return read_best_json(from_path)
    latest = latest_best_json(runs_dir)
    if latest is not None:
        return read_best_json(latest)
    return CoefficientSource(
        Coefficients(PAPER_ALPHA, PAPER_BETA, PAPER_GAMMA),
        f"the EfficientNet paper's coefficients (no --alpha/--beta/--gamma, --from, or run in {runs_dir}/)",
    )
