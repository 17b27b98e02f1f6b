"""`expand` as one function, which the command line and the Python API both call: coefficients (given, from a
run, or the paper's) or a published preset -> the measured members, with what the user should be told."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

from ..errors import UserError
from ..families.registry import DEFAULT_FAMILY
from ..metrics import CostMetric


def default_phis(preset: str | None) -> list[int]:
    """φ = 0..7; for a preset, its members up to φ = 7 (EfficientNet's b8 and l2 only on request)."""
    from .members import preset_spec

    if preset is None:
        return list(range(0, 8))
    return sorted(m.index for m in preset_spec(preset).official.values() if m.index <= 7)


class ExpandedFamily(list):
    """`expand`'s members in φ order (a list), with the title and metadata its tables carry."""

    def __init__(self, members, *, title: str, meta: dict, notes: list[str]):
        super().__init__(members)
        self.title, self.meta, self.notes = title, meta, notes  # notes: what the user should be told
        self.exported: list[Path] = []  # member configs written by `export=`


def _exported(family: ExpandedFamily, export: str | Path | None) -> ExpandedFamily:
    if export is not None:
        from .export import export_family

        family.exported = export_family(family, export, family=family.meta["family"], meta=family.meta,
                                        num_classes=family.meta.get("num_classes"))
    return family


def expand(*, alpha: float | None = None, beta: float | None = None, gamma: float | None = None,
           from_run: str | Path | None = None, preset: str | None = None, phis: Iterable[int] | None = None,
           family: str | None = None, base_resolution: int | None = None, num_classes: int = 1000,
           resolution_multiple: int = 8, match_budget: bool = False,
           on_member: Callable[[str], None] | None = None,
           on_note: Callable[[str], None] | None = None, max_params: int | None = None,
           cost: str | None = None, latency_device: str = "cpu", latency_batch: int | None = None,
           export: str | Path | None = None) -> ExpandedFamily:
    """`scalesearch expand`: coefficients (given, from a run, or the paper's) or a preset -> measured members.

    `cost` (default: the run's metric with `from_run`, else flops) is the metric of each member's target
    (the law's factor)^φ and of `match_budget`; every member carries multiply-adds, parameters and activations,
    and its latency where the metric is latency. Coefficients of a step down (all <= 1, from a budget below 1)
    are read as φ = -1, so negative φ always means smaller than the base. `export` (a directory) also writes one
    JSON config per member there (`build_model(config=...)` builds it); it is probed before any work, and the
    written paths are the result's `.exported`.

    `on_note(line)` hears, as it is found, what the command line prints beside the table: where the
    coefficients and the family came from, an unfinished run, members that miss their FLOP target or were left
    out for having more than `max_params` parameters."""
    from .members import expand_family, expand_preset, preset_spec, preset_title, target_miss_note
    from ..families import resolve_family
    from ..families.user import probe_family
    from .sources import resolve_coefficients

    from ..config import check_cap_above_base, check_max_params

    check_max_params(max_params)  # before any member is measured
    if export is not None:
        from .export import probe_export_dir

        probe_export_dir(export)
    latency_batch = 1 if latency_batch is None else latency_batch  # a family table times its members one image at a time unless told
    CostMetric(name=cost or "flops", latency_device=latency_device, latency_batch=latency_batch).validated()
    notes: list[str] = []

    def note(line: str) -> None:
        notes.append(line)
        if on_note is not None:
            on_note(line)

    phis = list(phis) if phis is not None else default_phis(preset)
    if preset is not None:
        if any(v is not None for v in (alpha, beta, gamma, from_run)):
            raise UserError("--preset takes the published table: drop --alpha/--beta/--gamma/--from")
        preset_spec(preset)  # UserError if unknown
        metric = CostMetric(name=cost or "flops", latency_device=latency_device, latency_batch=latency_batch)
        members = _within_cap(expand_preset(preset, phis, num_classes=num_classes, on_member=on_member,
                                            metric=metric), max_params, note)
        return _exported(ExpandedFamily(members, title=preset_title(preset), notes=notes,
                                        meta={"source": f"preset {preset}", "family": preset,
                                              "num_classes": num_classes}), export)
    source = resolve_coefficients(alpha, beta, gamma, Path(from_run) if from_run is not None else None)
    run = source.run
    family_from_run = family is None and run is not None and run.family is not None  # default: the run's family
    family = run.family if family_from_run else (family or DEFAULT_FAMILY)
    # Everything that can refuse the command is checked before anything is said or measured.
    spec = resolve_family(family)
    metric = CostMetric(name=cost or (run.metric.name if run is not None else "flops"), latency_device=latency_device,
                        latency_batch=latency_batch).validated()
    probe_family(spec, multipliers=[(1.0, 1.0)], resolution=base_resolution or spec.base_resolution,
                 num_classes=num_classes)
    if max_params is not None:
        from ..cost import measure_cost

        base_params = measure_cost(family, width_mult=1.0, depth_mult=1.0, resolution=base_resolution or
                                   spec.base_resolution, num_classes=num_classes).params
        check_cap_above_base(max_params, base_params, base="network", detail=f"{family}, {num_classes} classes",
                             consequence="every member would be left out")
    if family_from_run:
        note(f"Family from {run.best_json}: {family}")
    if run is not None and run.complete is False:
        note(f"Note: {run.best_json} comes from a study that is not complete (interrupted, or still running); "
                 "its winner may change when the run is resumed.")
    c = source.coefficients
    note(f"Coefficients from {source.description}: α={c.alpha:.4g} β={c.beta:.4g} γ={c.gamma:.4g} "
         f"({metric.law.text} = {c.factor(metric.law):.4g})")
    if c.scales_down:
        c = c.step_up()
        note(f"These coefficients are a step down (all <= 1): read as φ = -1 of the step up α={c.alpha:.4g} "
             f"β={c.beta:.4g} γ={c.gamma:.4g}, so φ = -1 is the searched network's shape and φ = -3 three steps down")
    if not metric.is_flops:
        note(f"Targets and --match-budget in {metric.label}: (the step's {metric.law.text})^φ")
    members = expand_family(c, phis, family=family, base_resolution=base_resolution, num_classes=num_classes,
                            resolution_multiple=resolution_multiple, match_budget=match_budget, on_member=on_member,
                            metric=metric, on_note=note)
    members = _within_cap(members, max_params, note)
    caveats = []
    answer = run.answer if run is not None else None
    if answer is not None:  # what the run's coefficients rest on, said with the table
        from .members import interval_notes, unseparated_caveat, with_intervals

        members = with_intervals(members, answer["alpha_range"], answer["beta_range"],
                                 step_down=source.coefficients.scales_down)
        for line in interval_notes(members, answer):
            note(line)
        caveat = unseparated_caveat(answer)
        if caveat:
            caveats.append(caveat)
            note(caveat)
    miss = target_miss_note(members, match_budget=match_budget, resolution_multiple=resolution_multiple)
    if miss:
        note(miss)
    matched = ", resolution matched to the budget" if match_budget else ""
    title = (f"{family} family: α={c.alpha:.4g}, β={c.beta:.4g}, γ={c.gamma:.4g} "
             f"({metric.law.text} = {c.factor(metric.law):.4g}){matched}"
             + ("" if metric.is_flops else f", targets in {metric.name}"))
    meta = {"source": source.description, "family": family, "alpha": c.alpha, "beta": c.beta, "gamma": c.gamma,
            "flops_factor": c.flops_factor, "match_budget": match_budget, "cost": metric.to_dict(),
            "num_classes": num_classes, "notes": notes, "caveats": caveats,
            **({"interval": answer} if answer is not None else {})}
    return _exported(ExpandedFamily(members, title=title, meta=meta, notes=notes), export)


def _within_cap(members: list, max_params: int | None, note: Callable[[str], None]) -> list:
    """The members with at most `max_params` parameters; the others named in a note."""
    if max_params is None:
        return members
    over = [m for m in members if m.params > max_params]
    if over and len(over) == len(members):  # an empty table is no answer: the cap is a mistake, said in one line
        smallest = min(members, key=lambda m: m.params)
        raise UserError(f"--max-params {max_params:,} leaves no member: the smallest, {smallest.name}, has "
                        f"{smallest.params:,} parameters; raise the cap")
    if over:
        note(f"Left out over --max-params {max_params:,}: " + ", ".join(f"{m.name} ({m.params:,} parameters)"
                                                                     for m in over))
    return [m for m in members if m.params <= max_params]
