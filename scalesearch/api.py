"""The public Python API; it mirrors the command line, which is a thin layer over it.

    import scalesearch
    result = scalesearch.grid(budget=2.0, out="runs/my-grid")        # RunResult
    print(result.best["alpha"], result.best["verdict"]["text"])
    members = scalesearch.expand(alpha=1.2, beta=1.1, gamma=1.15, phis=range(1, 8))

Bad options raise `scalesearch.UserError` (a ValueError) before any work starts.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable


from .config import SearchConfig, WorkerOptions, option_fields
from .errors import UserError
from .engine.run import RunResult
from .metrics import CostMetric
from .scaling import check_budget

log = logging.getLogger("scalesearch")


def run_search(
    config: SearchConfig,
    *,
    on_trial: Callable[[dict], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    log_line: Callable[[str], None] | None = None,
    worker_index: int = 0,
    on_open: Callable[[Path], None] | None = None,
) -> RunResult:
    """Validate `config`, prepare data and proxy, and run (or resume) its study to the end, in this process.

    `on_open(out_dir)` runs once the study is open and queued, before training (where `jobs` starts the
    extra worker processes)."""
    from .engine.objective import Experiment
    from .engine.run import run_study
    from .engine.storage import open_storage

    cfg = config.validated()
    say = log_line or log.info
    if cfg.storage:
        open_storage(cfg.storage)  # an unreachable or malformed URL fails here, before any data or training
    exp = Experiment.prepare(cfg)
    return run_study(cfg, exp, on_trial=on_trial, log_line=say, on_progress=on_progress, worker_index=worker_index,
                     on_open=on_open)


def _with_workers(function: str, kwargs: dict, run: Callable, *, workers: WorkerOptions, device: str | None,
                  threads: int | None, callbacks: dict) -> RunResult:
    """Run `run(on_open)` with the worker processes `workers` ask for; each is this very call
    (`function(**kwargs)`) in a process of its own."""
    from .engine.peers import run_with_peers

    say = callbacks.get("log_line") or log.info
    call = {"function": function, "kwargs": {**kwargs, "command_line": callbacks.get("command_line", "")}}
    return run_with_peers(run, call=call, jobs=workers.jobs, devices=workers.devices,
                          jobs_per_device=workers.jobs_per_device, device=device, threads=threads, say=say)


_RUN_CALLBACKS = ("on_trial", "on_progress", "log_line")
_DEFAULT, _WORKERS = SearchConfig(mode="grid"), WorkerOptions()  # every option's default, as the commands have it


def _latency_jobs(cost: str | None, jobs: int | str) -> int | str:
    """`--jobs auto` under a latency budget is one worker: a network timed while another trains beside it is
    timed against the contention. An explicit `--jobs N` is the user's to choose."""
    return 1 if cost == "latency" and jobs == "auto" else jobs


def _run_mode(mode: str, options: dict) -> RunResult:
    """grid() and search(): `options` are SearchConfig's and WorkerOptions' fields of `mode` (their defaults where
    not given) and the callbacks; the command line calls the same with what the user typed."""
    callbacks = {k: options.pop(k) for k in (*_RUN_CALLBACKS, "command_line") if k in options}
    worker_names = [f.name for f in option_fields(WorkerOptions, mode)]
    unknown = set(options) - {f.name for f in option_fields(SearchConfig, mode)} - set(worker_names)
    if unknown:
        raise TypeError(f"{mode}() got unexpected keyword argument(s): {', '.join(sorted(unknown))}")
    workers = WorkerOptions(**{k: options.pop(k) for k in worker_names if k in options})
    if options.get("out") is not None:
        options["out"] = Path(options["out"])
    if "data" in options:
        options["data"] = str(options["data"])
    cfg = SearchConfig(mode=mode, **options, command_line=callbacks.get("command_line", ""))
    workers = replace(workers, jobs=_latency_jobs(cfg.cost, workers.jobs)).validated(device=cfg.device)
    kwargs = {**options, **asdict(workers)}  # each peer makes this very call
    return _with_workers(mode, kwargs, lambda on_open: run_search(cfg, on_open=on_open, **_run_callbacks(callbacks)),
                         workers=workers, device=cfg.device, threads=cfg.threads, callbacks=callbacks)


def _signature(mode: str) -> inspect.Signature:
    """grid()'s and search()'s keyword-only options with their SearchConfig defaults, for help() and editors."""
    params = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default, annotation=f.type)
              for cls in (SearchConfig, WorkerOptions) for f in option_fields(cls, mode)]
    params.append(inspect.Parameter("callbacks", inspect.Parameter.VAR_KEYWORD))
    return inspect.Signature(params, return_annotation="RunResult")


def grid(**options) -> RunResult:
    """`scalesearch grid`: α and β on a grid, γ from the budget, every candidate budget-matched and trained.

    Takes the command's options as keywords (SearchConfig's fields, with its defaults: budget=2.0, step=0.05,
    ..., and `significance` for --alpha-level), `on_trial`, `on_progress` and `log_line` callbacks. `cost` is
    the metric the budget holds on (flops, activations or latency, timed on `latency_device` at
    `latency_batch`, by default the proxy's training batch).

    `jobs` (default "auto", as on the command line: one worker per core on the CPU, one on a GPU; `jobs=1` keeps
    the run in this process) or `devices` with `jobs_per_device` runs that many worker processes of the study on
    this machine, started once the study is open; Ctrl-C or SIGTERM stops them all and the files are written."""
    return _run_mode("grid", options)


def search(**options) -> RunResult:
    """`scalesearch search`: an Optuna sampler on the simplex α·β²·γ² = budget, or the law of `cost` (options,
    `jobs` and `cost` as for `grid`; `trials`, `sampler` and `pruner` instead of `step`)."""
    return _run_mode("search", options)


grid.__signature__ = _signature("grid")
search.__signature__ = _signature("search")


def _run_callbacks(callbacks: dict) -> dict:
    unknown = set(callbacks) - set(_RUN_CALLBACKS) - {"command_line"}
    if unknown:
        raise TypeError(f"unexpected keyword argument(s): {', '.join(sorted(unknown))}")
    return {k: v for k, v in callbacks.items() if k in _RUN_CALLBACKS}


def compare(*, from_run: str | Path | None = None, budget: float | None = None, phi: float = 1.0,
            seeds: int | None = None, data: str | None = None, epochs: int | None = None, device: str | None = None,
            out: str | Path | None = None, storage: str | None = None, seed: int | None = None,
            family: str | None = None, tolerance: float | None = None, significance: float = _DEFAULT.significance,
            skip_bad_images: bool = False, threads: int | None = None, jobs: int | str = _WORKERS.jobs,
            devices: list[int] | None = None, jobs_per_device: int = _WORKERS.jobs_per_device, cost: str | None = None,
            latency_device: str | None = None, latency_batch: int | None = None, **callbacks) -> RunResult:
    """`scalesearch compare`: compound scaling against depth-, width- and resolution-only at one measured budget.

    With `from_run`, the compound arm is that run's winner and everything that decides what a trial
    measures (budget, tolerance, data, epochs, family, seed) is the run's; its study storage holds the
    comparison too. Without it, the paper's coefficients moved onto `budget` (default 2) are compared.
    `cost` (default: the run's metric, else flops) is the metric every arm is brought to: compare a FLOP
    run's winner at the same latency to see whether the compound rule still wins there.
    `jobs` as for `grid`. Options left None take the run's value with `from_run`, else grid's default.
    """
    kwargs = {k: v for k, v in locals().items() if k != "callbacks"}
    from .engine.compare import (CompareExperiment, CompareSetup, output_suffix, paper_compound, read_run,
                                 setup_from_run)
    from .engine.run import run_study

    if not (phi > 0):
        raise UserError(f"--phi must be > 0, got {phi:g}")
    if seeds is not None and seeds < 1:
        raise UserError(f"--seeds must be >= 1, got {seeds}")
    suffix = "" if phi == 1 else f"-phi{phi:g}"
    command_line = callbacks.get("command_line", "")
    if from_run is not None:
        fixed = {"--budget": budget, "--data": data, "--epochs": epochs, "--seed": seed, "--family": family,
                 "--tolerance": tolerance}
        given = [name for name, value in fixed.items() if value is not None]
        if given:
            raise UserError(f"compare --from uses the run's budget, tolerance, data, epochs, family and seed: drop "
                            f"{', '.join(given)}")
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
                           skip_bad_images=skip_bad_images, threads=threads, command_line=command_line)
    cfg = cfg.validated()
    run_callbacks = _run_callbacks(callbacks)

    def run(on_open):
        exp = CompareExperiment.prepare_compare(cfg, setup)
        # RunResult.best is compare.json's payload; records are the arms.
        return run_study(cfg, exp, on_open=on_open,
                         log_line=run_callbacks.pop("log_line", None) or log.info, **run_callbacks)

    workers = WorkerOptions(jobs=_latency_jobs(cfg.cost, jobs), devices=devices, jobs_per_device=jobs_per_device)
    return _with_workers("compare", kwargs, run, workers=workers.validated(device=cfg.device), device=cfg.device,
                         threads=cfg.threads, callbacks=callbacks)


def default_phis(preset: str | None) -> list[int]:
    """φ = 0..7; for a preset, its members up to φ = 7 (EfficientNet's b8 and l2 only on request)."""
    from .expansion import preset_spec

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
    from .expansion import expand_family, expand_preset, preset_spec, preset_title, target_miss_note
    from .families import resolve_family
    from .families.user import probe_family
    from .sources import resolve_coefficients

    from .config import check_cap_above_base, check_max_params

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
    family = run.family if family_from_run else (family or _DEFAULT.family)
    # Everything that can refuse the command is checked before anything is said or measured.
    spec = resolve_family(family)
    metric = CostMetric(name=cost or (run.metric.name if run is not None else "flops"), latency_device=latency_device,
                        latency_batch=latency_batch).validated()
    probe_family(spec, multipliers=[(1.0, 1.0)], resolution=base_resolution or spec.base_resolution,
                 num_classes=num_classes)
    if max_params is not None:
        from .cost import measure_cost

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
        from .expansion import interval_notes, unseparated_caveat, with_intervals

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


def build_model(*, from_run: str | Path | None = None, config: str | Path | dict | None = None, member=None,
                phi: float | None = None, num_classes: int | None = None, family: str | ExpandedFamily | None = None,
                base_resolution: int | None = None, resolution_multiple: int = 8, match_budget: bool = False,
                max_params: int | None = None) -> torch.nn.Module:  # noqa: F821 - torch is imported lazily
    """The network one family member describes, from exactly one source; `model.resolution` is the input size
    its row's FLOPs hold at, `model.member_config` the config it was built from.

    - `from_run=RUN, phi=3`: the member `expand(from_run=RUN, phis=[phi], ...)` lists (same options as expand);
    - `config=FILE`: a config `expand --export DIR` wrote (or its dict);
    - `member=fam[3], family=fam`: a member of an `expand` result `fam` (or `family="efficientnet"`, its name).
    `num_classes` defaults to the source's (expand's default 1000 for a run); a different one is refused, since the
    row's costs were measured with the source's.
    """
    from .export import build_from_config, check_config, load_member_config, member_config

    sources = {"from_run": from_run, "config": config, "member": member}
    given = [name for name, value in sources.items() if value is not None]
    if len(given) != 1:
        raise UserError(f"build_model takes exactly one of from_run=, config=, member=; got "
                        f"{', '.join(given) or 'none'}")
    if from_run is not None and phi is None:
        raise UserError("from_run= needs phi=: which member of the run's family to build")
    if from_run is None and phi is not None:
        raise UserError("phi= goes with from_run= (a config or member already is one φ)")
    expand_only = {"base_resolution": base_resolution is not None, "resolution_multiple": resolution_multiple != 8,
                   "match_budget": match_budget, "max_params": max_params is not None}
    if from_run is None and any(expand_only.values()):
        raise UserError(f"{', '.join(k for k, v in expand_only.items() if v)}= go with from_run= only")
    if from_run is not None:
        if isinstance(family, ExpandedFamily):
            raise UserError("with from_run=, family= is a family name (it overrides the run's)")
        members = expand(from_run=from_run, phis=[phi], family=family, base_resolution=base_resolution,
                         num_classes=1000 if num_classes is None else num_classes,
                         resolution_multiple=resolution_multiple, match_budget=match_budget, max_params=max_params)
        if not members:
            raise UserError(f"no member at φ={phi:g}: it has more than max_params={max_params:,} parameters")
        return build_from_config(member_config(members[0], family=members.meta["family"], meta=members.meta))
    if config is not None:
        if family is not None:
            raise UserError("config= names its own family: drop family=")
        cfg = load_member_config(config) if isinstance(config, (str, Path)) else check_config(dict(config))
    else:
        if family is None:
            raise UserError("member= needs family=: the expand result it came from, or the family's name")
        if not callable(getattr(member, "to_dict", None)):
            raise UserError(f"member= takes a member of an expand result, got a {type(member).__name__}")
        meta = dict(family.meta) if isinstance(family, ExpandedFamily) else {"family": str(family)}
        meta.setdefault("num_classes", 1000 if num_classes is None else num_classes)
        cfg = member_config(member, family=meta["family"], meta=meta)
    if num_classes is not None and num_classes != cfg.get("num_classes"):
        raise UserError(f"member {cfg.get('name')} was measured with num_classes={cfg.get('num_classes')}, not "
                        f"{num_classes}: drop num_classes= or expand again with it")
    return build_from_config(cfg)


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


def plot_family(members, paths: Iterable[str | Path], *, title: str = "") -> list[Path]:
    """`expand --plot`: the members' multiply-adds and parameters against φ, with the ideal (α·β²·γ²)^φ line,
    written to each path (its suffix, .png or .pdf, picks the format); the paths written."""
    from .reporting.figures import family_curve

    members = list(members)
    if not members:
        raise UserError("nothing to plot: no members")
    return family_curve(members, [Path(p) for p in paths], title).paths


@dataclass
class ReportResult:
    """What `report_run` made: the rendered text, where it went, and the figure files beside it."""

    text: str
    format: str
    out: Path | None  # None: the caller prints `text`
    figures: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # worth telling the user (on stderr, in the CLI)


def _measure_latencies(report, metric: CostMetric) -> None:
    """Each trained network's latency, for a report that draws a run of another metric against latency."""
    family = str(report.config.get("family", _DEFAULT.family))
    num_classes = int(report.provenance.get("data", {}).get("num_classes", 0)) or None
    if num_classes is None:
        raise UserError("this run's best.json does not record its class count: cannot rebuild its networks to "
                        "time them; report it with --cost flops or activations")
    for r in report.records:
        if r.state == "complete" and r.resolution is not None:
            r.latency_ms = metric.latency(family, depth_mult=r.depth_mult, width_mult=r.width_mult,
                                          resolution=r.resolution, num_classes=num_classes).median_ms


def report_run(*, from_run: str | Path, format: str | None = None, out: str | Path | None = None,
               storage: str | None = None, figures: bool = True, cost: str | None = None,
               latency_device: str = "cpu", latency_batch: int | None = None) -> ReportResult:
    """`scalesearch report`: a run read back from its study storage as md, latex, csv, json or html.

    `format` defaults to the suffix of `out` (.md, .tex, .csv, .json, .html), else md. With `out`, the
    report is written there atomically and the figures (PNG and PDF) beside it; without, the text is
    returned and the figures go into the run directory. `storage` opens a study whose URL best.json
    could not record (a password). `cost` (default: the run's metric) is the cost axis of the accuracy-vs-cost
    figure: a FLOP run's candidates seen in activations, or in latency, which is then measured for each
    trained network on `latency_device` at `latency_batch` (cached); the budget band is drawn only in the
    run's own metric.
    """
    from .fileio import atomic_write_text, probe_writable_dir, probe_writable_file
    from .reporting.figures import write_report_figures
    from .reporting.load import load_run
    from .report import FORMAT_BY_SUFFIX
    from .reporting.tables import FORMATS, render

    out = Path(out) if out is not None else None
    fmt = format or (FORMAT_BY_SUFFIX.get(out.suffix.lower()) if out is not None else None) or "md"
    if fmt not in FORMATS:
        raise UserError(f"unknown --format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if out is not None:
        try:
            probe_writable_file(out)  # before reading the study: a typo in --out costs nothing
        except OSError as exc:
            raise UserError(f"--out: {exc}") from None
    axis = None if cost is None else CostMetric(name=cost, latency_device=latency_device,
                                                latency_batch=1 if latency_batch is None else latency_batch).validated()
    report = load_run(from_run, storage=storage)
    if axis is not None:
        report.axis = axis
        if axis.name == "latency" and report.metric.name != "latency":
            _measure_latencies(report, axis)
    notes = list(report.notes)
    drawn: list[Path] = []
    if figures and report.ranking:
        directory = out.parent if out is not None else report.run_dir
        try:
            probe_writable_dir(directory)
        except OSError as exc:
            notes.append(f"figures not written ({exc}); pass --out FILE to put them beside it, or --no-figures")
        else:
            for d in write_report_figures(report, directory, out.stem if out is not None else "report"):
                drawn += d.paths
    text = render(report, fmt, drawn)
    if out is not None:
        atomic_write_text(out, text)
    return ReportResult(text, fmt, out, drawn, notes)
