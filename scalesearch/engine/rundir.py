"""Reading a run directory back: its best.json and the Optuna study behind it (`compare --from`, `report`).

best.json says how the run was made (config, provenance, study name); the study's storage holds the
results. Readers take the numbers from the storage, never from trials.csv, which is only a view of it.
"""

from __future__ import annotations

import json
from pathlib import Path

import optuna

from ..errors import UserError
from .storage import open_storage, redact_url


def load_best_json(run_dir: str | Path, *, option: str = "--from") -> dict:
    """best.json of a grid or search run directory; UserError (one line) when there is none or it is not ours."""
    run_dir = Path(run_dir)
    if not run_dir.exists():
        raise UserError(f"{option} {run_dir}: no such directory, so no best.json to read")
    if not run_dir.is_dir():
        raise UserError(f"{option} {run_dir}: not a directory; point it at a grid or search run directory")
    path = run_dir / "best.json"
    if not path.is_file():
        raise UserError(f"{option} {run_dir}: no best.json there; point it at a grid or search run directory")
    try:
        best = json.loads(path.read_text(encoding="utf-8"))
        best["provenance"]["config"]  # noqa: B018 - presence checks
        best["alpha"], best["beta"], best["gamma"], best["trial"], best["study"], best["budget"]  # noqa: B018
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
        raise UserError(f"{path} is not a scalesearch best.json ({type(exc).__name__}: {exc})") from None
    return best


def run_storage_url(run_dir: str | Path, best: dict, storage: str | None = None) -> str:
    """The URL of the run's study: `storage` if given, else the run's own (its SQLite file by default).

    A password is never written to best.json (it holds `***`); such a run needs `storage` from the user.
    """
    config = best["provenance"]["config"]
    url = storage or config.get("storage") or f"sqlite:///{(Path(run_dir) / 'study.db').resolve()}"
    if "***" in url:
        raise UserError("the run's study is in a database whose password is not recorded: pass --storage with "
                        "its URL")
    if url.startswith("sqlite:///"):
        # Opening a missing SQLite file would create an empty database in the user's run directory.
        db = Path(url[len("sqlite:///"):])
        if not db.is_file():
            raise UserError(f"the run's study file {db} is missing: pass --storage if the run used another one")
    return url


def open_run_study(run_dir: str | Path, best: dict, storage: str | None = None) -> optuna.Study:
    """The run's Optuna study (read through the same storage layer the run wrote with)."""
    url = run_storage_url(run_dir, best, storage)
    try:
        return optuna.load_study(study_name=best["study"], storage=open_storage(url))
    except KeyError:
        raise UserError(f"no study {best['study']!r} in {redact_url(url)} (the storage of {run_dir}): "
                        "pass --storage if the run used another one") from None
