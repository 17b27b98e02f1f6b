"""Where `expand` takes its coefficients from: options, a run's best.json, or the paper."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError
from .scaling import PAPER_ALPHA, PAPER_BETA, PAPER_GAMMA, Coefficients

DEFAULT_RUNS_DIR = Path("runs")


@dataclass(frozen=True)
class CoefficientSource:
    coefficients: Coefficients
    description: str  # said to the user: where the numbers came from
    best_json: Path | None = None
    family: str | None = None  # the family a run searched (expand uses it unless --family says otherwise)
    cost: dict | None = None  # the metric a run's budget held on (best.json's "cost"), None: not from a run
    answer: dict | None = None  # a run's intervals and verdict (best.json's), None: not from a run, or an old one


def read_best_json(path: Path) -> CoefficientSource:
    if path.is_dir():
        path = path / "best.json"
    if not path.is_file():
        raise UserError(f"no best.json at {path}: point --from at a run directory or its best.json")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        coeffs = Coefficients(float(data["alpha"]), float(data["beta"]), float(data["gamma"]))
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise UserError(f"{path} is not a scalesearch best.json (needs alpha, beta, gamma): {exc}") from None
    config = data.get("provenance", {}).get("config", {}) if isinstance(data.get("provenance"), dict) else {}
    family = config.get("family") if isinstance(config, dict) else None
    cost = data.get("cost") if isinstance(data.get("cost"), dict) else None
    return CoefficientSource(coeffs, f"the winner in {path}", path, family if isinstance(family, str) else None,
                             cost, _answer(data))


def _answer(data: dict) -> dict | None:
    """What a run's best.json says its coefficients rest on: the winner's intervals and what it could not be told
    apart from (a best.json from before networks were ranked has none)."""
    try:
        ranges = {k: [float(v) for v in data[k]] for k in ("alpha_range", "beta_range")}
    except (KeyError, TypeError, ValueError):
        return None
    if any(len(r) != 2 for r in ranges.values()):
        return None
    unseparated = data.get("unseparated") if isinstance(data.get("unseparated"), list) else []
    return {**ranges, "network": data.get("network"), "decided_at_phi": data.get("decided_at_phi"),
            "separated": data.get("separated"), "answer": data.get("answer"),
            "unseparated": [u for u in unseparated if isinstance(u, dict)]}


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
