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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable


from .config import SearchConfig, WorkerOptions, option_fields
from .errors import UserError
from .comparison.command import compare  # noqa: F401 - the API's compare, as the command line calls it
from .engine.peers import run_call
from .engine.run import RUN_CALLBACKS, RunResult, run_callbacks
from .expansion.command import ExpandedFamily, default_phis, expand  # noqa: F401 - the API's expand
from .metrics import CostMetric
from .families.registry import DEFAULT_FAMILY

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




def _run_mode(mode: str, options: dict) -> RunResult:
    """grid() and search(): `options` are SearchConfig's and WorkerOptions' fields of `mode` (their defaults where
    not given) and the callbacks; the command line calls the same with what the user typed."""
    callbacks = {k: options.pop(k) for k in (*RUN_CALLBACKS, "command_line") if k in options}
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
    workers = workers.for_cost(cfg.cost).validated(device=cfg.device)
    kwargs = {**options, **asdict(workers)}  # each peer makes this very call
    return run_call(mode, kwargs, lambda on_open: run_search(cfg, on_open=on_open, **run_callbacks(callbacks)),
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
    from .expansion.export import build_from_config, check_config, load_member_config, member_config

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
    family = str(report.config.get("family", DEFAULT_FAMILY))
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
    from .fileio import atomic_write_text, probe_writable_dir
    from .reporting.figures import write_report_figures
    from .reporting.load import load_run
    from .formats import output_format
    from .reporting.tables import FORMATS, render

    out = Path(out) if out is not None else None
    # Before reading the study: a typo in --format or --out costs nothing.
    fmt = output_format(format, out, formats=FORMATS, default="md", file_default="md")
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
