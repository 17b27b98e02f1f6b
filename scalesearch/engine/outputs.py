"""What a grid or sampler run leaves: trials.csv and best.json, written atomically from the storage alone, with the
provenance that says how the run was made."""

from __future__ import annotations

import platform

import optuna

from ..config import SearchConfig
from ..fileio import atomic_write_json, atomic_write_text
from ..metrics import RUN_FLOP_CONVENTION
from .networks import best_payload
from .results import CandidateRecord, candidate_records, rows_to_csv
from .storage import redact_url, redact_secret


def redacted_config(cfg: SearchConfig) -> dict:
    """The command line and config for best.json, with a storage password replaced by ***."""
    config = cfg.to_dict()
    command_line = redact_secret(cfg.command_line, cfg.storage) if cfg.storage else cfg.command_line
    if cfg.storage:
        config["storage"] = redact_url(cfg.storage)
    config["command_line"] = command_line
    return {"command_line": command_line, "config": config}


def provenance(exp) -> dict:
    """How the run was made, for best.json: versions, device, data, proxy, options (`exp`: the Experiment)."""
    import torch
    import typer

    from ..version import __version__

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
                     "fingerprint": exp.fingerprint, **({"subset": data.subset} if data.subset else {})},
            "proxy": {"name": exp.proxy.name, "width_mult": exp.proxy.width_mult,
                      "depth_mult": exp.proxy.depth_mult, "resolution": exp.proxy.resolution,
                      "train": exp.proxy.train.__dict__},
            **redacted_config(exp.config),
            "flop_convention": RUN_FLOP_CONVENTION, "cost": exp.config.metric.to_dict()}


class Outputs:
    """trials.csv always; best.json once a candidate completed; both atomic, from the storage alone."""

    FILES = "trials.csv, best.json"

    def __init__(self, cfg: SearchConfig, exp):
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
