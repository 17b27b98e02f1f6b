"""A run directory read back, once, for every command that takes `--from RUN` (expand, compare, report) and
for the API: its best.json as typed fields, and where its study's storage is.

best.json says how the run was made (config, provenance, study name) and what it answered; the study's
storage holds the results (engine/rundir.py opens it). A best.json written by hand or by another tool needs
only alpha, beta and gamma where coefficients are all a command takes (`expand --from`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError
from .metrics import CostMetric, metric_from_dict
from .scaling import Coefficients

SIGNIFICANCE = 0.05  # --alpha-level of a run that does not record one
TOLERANCE = 0.1  # --tolerance of a run that does not record one


@dataclass(frozen=True)
class RunDirectory:
    path: Path  # the run directory
    best_json: Path
    best: dict  # best.json as written
    coefficients: Coefficients  # the answer's α, β, γ
    metric: CostMetric  # what its budget held on
    config: dict  # the options it ran with (best.json's provenance.config; {} where none is recorded)
    complete: bool | None  # None: not recorded (a best.json of another tool)

    @property
    def budget(self) -> float:
        return float(self.best["budget"])

    @property
    def study(self) -> str:
        return str(self.best["study"])

    @property
    def trial(self) -> int:
        return int(self.best["trial"])

    @property
    def family(self) -> str | None:
        family = self.config.get("family")
        return family if isinstance(family, str) else None

    @property
    def tolerance(self) -> float:
        return float(self.config.get("tolerance", self.best.get("tolerance", TOLERANCE)))

    @property
    def significance(self) -> float:
        """--alpha-level; runs before 2026-12-08 recorded it as config's `alpha`."""
        verdict = self.best.get("verdict") if isinstance(self.best.get("verdict"), dict) else {}
        return float(self.config.get("significance", self.config.get("alpha", verdict.get("alpha", SIGNIFICANCE))))

    @property
    def answer(self) -> dict | None:
        """What the coefficients rest on: the winner's intervals and what it could not be told apart from (None
        for a best.json from before networks were ranked)."""
        try:
            ranges = {k: [float(v) for v in self.best[k]] for k in ("alpha_range", "beta_range")}
        except (KeyError, TypeError, ValueError):
            return None
        if any(len(r) != 2 for r in ranges.values()):
            return None
        unseparated = self.best.get("unseparated") if isinstance(self.best.get("unseparated"), list) else []
        return {**ranges, **{k: self.best.get(k) for k in ("network", "decided_at_phi", "separated", "answer")},
                "unseparated": [u for u in unseparated if isinstance(u, dict)]}

    def storage_url(self, storage: str | None = None) -> str:
        """The URL of the run's study: `storage` if given, else the run's own (its SQLite file by default).

        A password is never written to best.json (it holds `***`); such a run needs `storage` from the user."""
        url = storage or self.config.get("storage") or f"sqlite:///{(self.path / 'study.db').resolve()}"
        if "***" in url:
            raise UserError("the run's study is in a database whose password is not recorded: pass --storage with "
                            "its URL")
        if url.startswith("sqlite:///"):
            # Opening a missing SQLite file would create an empty database in the user's run directory.
            db = Path(url[len("sqlite:///"):])
            if not db.is_file():
                raise UserError(f"the run's study file {db} is missing: pass --storage if the run used another one")
        return url


def read_run_dir(path: str | Path, *, option: str = "--from", study: bool = True) -> RunDirectory:
    """The run in `path` (a run directory, or its best.json where `study` is False); UserError (one line) when
    there is none or it is not ours. `study`: the run's study is to be read too, so best.json must name it
    (written by scalesearch grid or search); otherwise coefficients are all it must hold."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"{option} {path}: no such directory, so no best.json to read")
    if path.is_dir():
        best_json = path / "best.json"
    elif study:
        raise UserError(f"{option} {path}: not a directory; point it at a grid or search run directory")
    else:
        best_json, path = path, path.parent
    if not best_json.is_file():
        raise UserError(f"{option} {path}: no best.json there; point it at a grid or search run directory")
    try:
        best = json.loads(best_json.read_text(encoding="utf-8"))
        coefficients = Coefficients(float(best["alpha"]), float(best["beta"]), float(best["gamma"]))
        provenance = best.get("provenance")
        config = provenance.get("config") if isinstance(provenance, dict) else None
        if study:
            if not isinstance(config, dict):
                raise KeyError("provenance.config")
            int(best["trial"]), float(best["budget"]), best["study"]  # noqa: B018 - presence checks
        config = dict(config) if isinstance(config, dict) else {}
        metric = metric_from_dict(best.get("cost") if isinstance(best.get("cost"), dict) else None)
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        need = "" if study else " (needs alpha, beta, gamma)"
        raise UserError(f"{best_json} is not a scalesearch best.json{need}: {type(exc).__name__}: {exc}") from None
    complete = best.get("complete")
    return RunDirectory(path=path, best_json=best_json, best=best, coefficients=coefficients, metric=metric,
                        config=config, complete=complete if isinstance(complete, bool) else None)
