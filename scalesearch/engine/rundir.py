"""A run's Optuna study, opened from its run directory (`compare --from`, `report`).

Readers take the numbers from the storage, never from trials.csv, which is only a view of it.
"""

from __future__ import annotations

import optuna

from ..errors import UserError
from ..rundir import RunDirectory
from .storage import open_storage, redact_url


def open_run_study(run: RunDirectory, storage: str | None = None) -> optuna.Study:
    """The run's Optuna study (read through the same storage layer the run wrote with)."""
    url = run.storage_url(storage)
    try:
        return optuna.load_study(study_name=run.study, storage=open_storage(url))
    except KeyError:
        raise UserError(f"no study {run.study!r} in {redact_url(url)} (the storage of {run.path}): "
                        "pass --storage if the run used another one") from None
