"""The `scalesearch` command line: parse, call the library, print. No logic lives here."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Optional

import typer

from .config import FAMILY_HELP, MAX_WORKERS, WorkerOptions, option_field
from .errors import EXIT_INTERRUPTED, EXIT_USER_ERROR, UserError, say_error, say_interrupted
from .scaling import parse_budget, parse_phi

app = typer.Typer(
    help="EfficientNet-style compound scaling: search α, β, γ on your data and expand them into a family.",
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)

def _console():
    from rich.console import Console

    console = Console(stderr=True)
    # Piped or logged stderr has no width; rich's 80-column fallback would fold every log line.
    return console if console.is_terminal else Console(stderr=True, width=160)


def _phi_option(text: str) -> list[int]:
    try:
        return parse_phi(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _count_text(text: str) -> int:
    from .scaling import parse_count

    try:
        return parse_count(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _budget_option(text: str) -> float:
    try:
        return parse_budget(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def _family_option(name: str) -> str:
    """Every command's --family goes through the registry's one check (UserError: one line, exit 2)."""
    from .families import resolve_family

    return resolve_family(name).name


def _seeds_option(text) -> "int | str":
    text = str(text).strip().lower()
    if text == "auto":
        return "auto"
    try:
        value = int(text)
    except ValueError:
        raise typer.BadParameter(f"write 'auto' or a whole number of seeds, not {text!r}") from None
    if value < 1:
        raise typer.BadParameter(f"--seeds must be >= 1, got {value}")
    return value


def _option(name: str, *, config=None, **extra):
    """The option of SearchConfig's (or WorkerOptions') field `name`: its default, flag and help are the
    field's, so the command, the API and the recorded config cannot disagree."""
    from .config import SearchConfig

    f = option_field(config or SearchConfig, name)
    return typer.Option(f.default, f.metadata["flag"], help=f.metadata["help"], **extra)


# The options of `grid` and `search` (and the others' that mean the same), from SearchConfig's fields.
BUDGET = _option("budget", parser=_budget_option)
STEP = _option("step")
TRIALS = _option("trials")
SAMPLER = _option("sampler")
PRUNER = _option("pruner")
TOLERANCE = _option("tolerance")
SEEDS = _option("seeds", callback=lambda v: _seeds_option(v))
ALPHA_LEVEL = _option("significance")
FAMILY = _option("family", callback=_family_option)
SKIP_BAD = _option("skip_bad_images")
DATA = _option("data")
EPOCHS = _option("epochs")
DEVICE = _option("device", envvar="SCALESEARCH_DEVICE")
OUT = _option("out")
STORAGE = _option("storage")
STUDY = _option("study")
SEED = _option("seed")
REFINE = _option("refine")
COST = _option("cost")
LATENCY_DEVICE = _option("latency_device")
LATENCY_BATCH = _option("latency_batch")
MAX_PARAMS = _option("max_params", parser=_count_text)
PROXY_WIDTH = _option("proxy_width")
PROXY_DEPTH = _option("proxy_depth")
PROXY_RESOLUTION = _option("proxy_resolution")
BATCH_SIZE = _option("batch_size")
LR = _option("lr")
IMAGE_COLUMN = _option("image_column")
LABEL_COLUMN = _option("label_column")
TRAIN_IMAGES = _option("train_images", parser=_count_text)
VAL_IMAGES = _option("val_images", parser=_count_text)


def _positive(name: str):
    def check(value):
        # `not value > 0` also refuses nan; inf passes it but builds no network.
        if value is not None and (not value > 0 or value == float("inf")):
            raise typer.BadParameter(f"{name} must be a positive finite number, got {value}")
        return value

    return check


def _output_format(fmt: str, out: Optional[Path]) -> str:
    """expand's --format: the console table by default; with --out, the format the file's suffix names."""
    from .formats import output_format
    from .expansion.tables import FORMATS

    return output_format(None if fmt == "table" else fmt, out, formats=FORMATS, default="table")


@app.command()
def expand(
    phi: Optional[str] = typer.Option(None, "--phi", help="φ values: 3, 1..7, 0,2,4 or -2..7 (inclusive ranges); "
                                      "default 0..7, or every member of a --preset.",
                                      callback=lambda v: v if v is None else _phi_option(v)),
    alpha: Optional[float] = typer.Option(None, "--alpha", help="Depth coefficient α (>= 1)."),
    beta: Optional[float] = typer.Option(None, "--beta", help="Width coefficient β (>= 1)."),
    gamma: Optional[float] = typer.Option(None, "--gamma", help="Resolution coefficient γ (>= 1)."),
    from_: Optional[Path] = typer.Option(None, "--from", help="A run directory or its best.json."),
    preset: Optional[str] = typer.Option(None, "--preset", help="A published family: efficientnet (B0-B7, φ = B "
                                         "index), resnet (18-152, φ 0-4), mobilenetv2 (widths 0.35-1.4, φ -3..2)."),
    family: Optional[str] = typer.Option(None, "--family", help=FAMILY_HELP + " Default: the run's family with "
                                         "--from (or the newest run), else efficientnet.",
                                         callback=lambda v: v if v is None else _family_option(v)),
    base_resolution: Optional[int] = typer.Option(
        None, "--base-resolution", help="Input size at φ = 0 (default: the family's, 224).",
        callback=_positive("--base-resolution")),
    resolution_multiple: int = typer.Option(8, "--resolution-multiple", help="Round resolutions to this multiple.",
                                            callback=_positive("--resolution-multiple")),
    num_classes: int = typer.Option(1000, "--num-classes", help="Classifier outputs.",
                                    callback=_positive("--num-classes")),
    fmt: str = typer.Option("table", "--format", help="table, csv, md, latex or json."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write to this file (format from --format or suffix)."),
    match_budget: bool = typer.Option(False, "--match-budget", help="Keep each member's depth and width; pick the "
                                      "resolution (a multiple of --resolution-multiple; finer, then a nudged "
                                      "width, where that misses by over 3%) whose measured cost is closest to "
                                      "(α·β²·γ²)^φ (the --cost metric's law)."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Also draw the family curve (multiply-adds and "
                                        "parameters vs φ, with the ideal (α·β²·γ²)^φ): FILE.png and FILE.pdf, or "
                                        "only the one a .png/.pdf suffix names."),
    max_params: Optional[int] = MAX_PARAMS,
    cost: Optional[str] = typer.Option(None, "--cost", help="The metric of the target and of --match-budget: flops, "
                                       "activations or latency (default: the run's with --from, else flops)."),
    latency_device: str = LATENCY_DEVICE, latency_batch: Optional[int] = LATENCY_BATCH,
    export: Optional[Path] = typer.Option(None, "--export", metavar="DIR", help="Also write one JSON config per "
                                          "member into DIR (family, multipliers, resolution, dropout, costs), "
                                          "which scalesearch.build_model(config=FILE) builds."),
):
    """Expand coefficients into a model-family table with measured FLOPs and parameters."""
    phis: list[int] | None = phi  # parsed by the option's callback; None: the default for the source
    fmt = _output_format(fmt, out)
    plot_files = _plot_files(plot)
    console = _console()
    from . import api
    from .expansion.tables import render, rich_table

    phis = phis if phis is not None else api.default_phis(preset)
    rows = _with_progress(console, len(phis), lambda tick: api.expand(
        alpha=alpha, beta=beta, gamma=gamma, from_run=from_, preset=preset, phis=phis, family=family,
        base_resolution=base_resolution, num_classes=num_classes, resolution_multiple=resolution_multiple,
        match_budget=match_budget, on_member=tick, max_params=max_params, cost=cost,
        latency_device=latency_device, latency_batch=latency_batch, export=export,
        on_note=lambda line: console.print(line, markup=False, highlight=False, soft_wrap=True)))
    title, meta = rows.title, rows.meta
    if plot_files:
        api.plot_family(rows, plot_files, title=title)
        console.print(f"Wrote the family curve to {' and '.join(str(p) for p in plot_files)}.")
    if export is not None:
        console.print(f"Wrote {len(rows.exported)} member configs to {export}", markup=False, highlight=False)

    if fmt == "table" and out is None:
        from rich.console import Console

        stdout = Console()
        # Piped output has no terminal width; do not fold the table at rich's 80-column fallback.
        (stdout if stdout.is_terminal else Console(width=200)).print(rich_table(rows, title))
        return
    text = render(rows, fmt, title, meta)
    if out is None:
        sys.stdout.write(text)
    else:
        from .fileio import atomic_write_text

        atomic_write_text(out, text)
        console.print(f"Wrote {len(rows)} members to {out} ({fmt}).")


def _plot_files(plot: Optional[Path]) -> list[Path]:
    """The files `--plot FILE` writes, each probed before any work (as root, os.access would say yes)."""
    if plot is None:
        return []
    from .fileio import probe_writable_file
    from .plotting import plot_paths

    if plot.is_dir() or not plot.name:
        raise UserError(f"--plot {plot} is a directory: give a file name (FILE gives FILE.png and FILE.pdf)")
    files = plot_paths(plot)
    for path in files:
        try:
            probe_writable_file(path)
        except OSError as exc:
            raise UserError(f"--plot: {exc}") from None
    return files


def _with_progress(console, total: int, work):
    """Run work(tick) under a progress bar; tick(name) advances it by one member."""
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    # Transient: on a non-terminal stderr it would leave nothing but the blank line rich prints on stop.
    with Progress(TextColumn("measuring {task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(), console=console, transient=True,
                  disable=not console.is_interactive) as progress:
        task = progress.add_task("", total=total)
        return work(lambda name: progress.update(task, advance=1, description=name))


@app.command()
def flops(
    width_mult: float = typer.Option(1.0, "--width-mult", callback=_positive("--width-mult")),
    depth_mult: float = typer.Option(1.0, "--depth-mult", callback=_positive("--depth-mult")),
    resolution: int = typer.Option(224, "--resolution", callback=_positive("--resolution")),
    family: str = _option("family", callback=_family_option),
    num_classes: int = typer.Option(1000, "--num-classes", callback=_positive("--num-classes")),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
):
    """Measure one configuration: multiply-adds, parameters and activations."""
    from .cost import measure_cost
    from .metrics import FLOP_CONVENTION
    from .families import get_family
    from .families.user import probe_family

    probe_family(get_family(family), multipliers=[(depth_mult, width_mult)], resolution=resolution,
                 num_classes=num_classes)
    cost = measure_cost(family, width_mult=width_mult, depth_mult=depth_mult, resolution=resolution,
                        num_classes=num_classes)
    if as_json:
        import json

        print(json.dumps({"family": family, "width_mult": width_mult, "depth_mult": depth_mult,
                          "resolution": resolution, "num_classes": num_classes, **cost.to_dict(),
                          "flop_convention": FLOP_CONVENTION}))
        return
    print(f"{family} width {width_mult:g} depth {depth_mult:g} at {resolution}px, {num_classes} classes")
    print(f"  flops        {cost.flops:>16,}  ({cost.flops / 1e9:.3f} G multiply-adds)")
    print(f"  conv+linear  {cost.conv_linear_flops:>16,}")
    print(f"  params       {cost.params:>16,}  ({cost.params / 1e6:.2f} M)")
    print(f"  activations  {cost.activations:>16,}")
    print(f"  convention: {FLOP_CONVENTION}")


def _logging_to(console) -> None:
    """Route our and Optuna's log lines through the console the progress bar uses (they print above it)."""

    import optuna
    from rich.logging import RichHandler

    optuna.logging.disable_default_handler()
    optuna.logging.enable_propagation()
    # Optuna warns with a traceback for every failed trial (a Ctrl-C'd one, a diverged one); our own
    # per-trial line already says what happened and why, so only its errors come through.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if console.is_terminal:
        handler = RichHandler(console=console, show_path=False, show_time=False, show_level=False, markup=False)
    else:  # a log file: RichHandler would pad every line with spaces to the console's width
        handler = _PlainLines(console)
    logging.basicConfig(level=logging.INFO, handlers=[handler], format="%(message)s", force=True)
    logging.getLogger("fvcore").setLevel(logging.ERROR)


class _PlainLines(logging.Handler):
    """Each message as one line on the console's file, looked up per line as rich does: a stream captured once
    would outlive a swapped stderr (pytest's capture) and write to a closed file."""

    def __init__(self, console) -> None:
        super().__init__()
        self.console = console

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.console.file.write(self.format(record) + "\n")
            self.console.file.flush()
        except Exception:  # noqa: BLE001 - logging's contract: report, never raise
            self.handleError(record)


def _progress_view(console, description: str):
    """(stop, on_progress): the bar starts with the first report, i.e. once the study has opened, and `stop`
    ends it once. A refused resume or bad data then prints its one error line and nothing else: rich's
    Progress.stop prints a newline on a non-terminal stderr even for a bar that never started."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
        TimeRemainingColumn

    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(), console=console)
    tasks: list = []
    stopped: list[bool] = []

    def on_progress(done: int, total: int) -> None:
        if stopped:
            return
        if not tasks:
            progress.start()
            tasks.append(progress.add_task(description, total=total))
        progress.update(tasks[0], completed=done, total=total)

    def stop() -> None:
        started_and_running = tasks and not stopped
        stopped.append(True)  # first: an interrupt inside progress.stop() must not lead to a second stop
        if started_and_running:
            progress.stop()

    return stop, on_progress


def _live_view(description: str):
    """(console, log-line function, stop-the-bar function, on_progress) for a long run: log lines print above
    the bar."""
    console = _console()
    _logging_to(console)
    stop_bar, on_progress = _progress_view(console, description)
    return console, logging.getLogger("scalesearch").info, stop_bar, on_progress


def _trial_line(head: str, info: dict, *fields: str) -> str:
    """One console line for a settled trial (grid, search, compare): its fields, seed, time and outcome.

    A trial that reused another's result (a grid point rounding built into a network already trained, or
    compare's copy of the run's winner) took no training time; the engine's reason says whose result it is,
    shown in place of the time."""
    acc = info.get("value")
    outcome = f"acc {acc:.4f}" if acc is not None else info.get("reason", info["state"])
    secs = f"{info['seconds']:.1f}s" if info.get("seconds") else ""
    reused = f"({info['reason']})" if acc is not None and info.get("reason") else ""
    parts = (*fields, f"seed {info.get('seed', 0)}", secs, outcome, reused)
    return f"trial {info['trial']:>3} {head} " + " ".join(p for p in parts if p)


def answer_lines(best: dict) -> list[str]:
    """The console's summary of a run's answer: the network, its interval and point, the verdict, and what the
    evidence could not resolve (best.json's fields, so the console never says more than the file)."""
    from .reporting.tables import answer_caveats, effective_text, interval

    metric = best.get("cost", {}).get("metric", "flops")
    ratio = best.get("measured_cost_ratio") or best["measured_flops_ratio"]
    under = f", {best['budget_fit']}" if str(best.get("budget_fit", "")).startswith("under") else ""
    std = f" ± {best['accuracy_std']:.4f}" if best.get("accuracy_std") is not None else ""
    eff = f" ({effective_text(best, '.3f')})" if best.get("alpha_eff") is not None else ""
    lines = [
        f"Answer: network {best['network']}, decided at φ = {best['decided_at_phi']}: grid points α "
        f"{interval(best['alpha_range'], '.4g')}, β {interval(best['beta_range'], '.4g')} build it; reported "
        f"α={best['alpha']:.4g} β={best['beta']:.4g} γ={best['gamma']:.4g} (α, β the centre of the interval, γ from "
        "the budget's law)",
        f"Trained as depth x{best['depth_mult']:.4g}, width x{best['width_mult']:.4g} at {best['resolution']}px{eff}, "
        f"measured {'FLOP' if metric == 'flops' else metric} ratio {ratio:.3f}{under}, val accuracy "
        f"{best['accuracy']:.4f}{std} over {best['seeds']} seed(s); {best.get('networks', '?')} distinct "
        "network(s) at φ = 1",
    ]
    if best.get("under_budget_candidates"):
        lines.append(f"{best['under_budget_candidates']} trained grid point(s) are under budget: no resolution "
                     "landed them within the tolerance, so they were trained at the closest size below it "
                     "(budget_fit in trials.csv)")
    lines.append(f"Verdict: {best['verdict']['text']}")
    if best.get("highest_mean_network", best["network"]) != best["network"]:
        lines.append(f"The answer is {best['network']}: {best['choice']}")
    return lines + answer_caveats(best)


def _run_search(mode: str, typed: dict) -> None:
    """Shared body of `grid` and `search`: the API call with what was typed (its fields' names: --alpha-level is
    `significance`) in a live view, then a summary."""
    from . import api

    options = {("significance" if k == "alpha_level" else k): v for k, v in typed.items()}

    console, say, stop_bar, on_progress = _live_view(f"{mode} {options['budget']:g}x")

    def on_trial(info: dict) -> None:
        alpha, beta, gamma = (info.get(k) for k in ("alpha", "beta", "gamma"))
        coeffs = f"α={alpha:.3f} β={beta:.3f} γ={gamma:.3f}" if alpha is not None else ""
        built = f"{info['resolution']}px" if info.get("resolution") else ""
        ratio = info.get("cost_ratio", info.get("flops_ratio"))
        word = {"flops": "flops", "activations": "acts", "latency": "latency"}[options.get("cost", "flops")]
        ratio = f"{word} x{ratio:.2f}" if ratio is not None else ""
        under = (f"under budget ({info['cost_ratio']:.2f}x)"
                 if info.get("under_budget") and info.get("cost_ratio") is not None else "")
        say(_trial_line(f"{info['state']:<9}", info, coeffs, built, ratio, under))

    try:
        result = getattr(api, mode)(**options, on_trial=on_trial, log_line=say, on_progress=on_progress,
                                    command_line=_command_line())
    except KeyboardInterrupt:
        stop_bar()
        from .config import SearchConfig

        out = SearchConfig(mode=mode, budget=options["budget"], out=options["out"],
                           cost=options.get("cost", "flops")).out_dir
        console.print(f"Interrupted. Finished trials are saved in {out}/; run the same command to resume.")
        _reported_interrupt()
        raise typer.Exit(EXIT_INTERRUPTED)
    finally:
        stop_bar()
    best, out_dir = result.best, result.out_dir
    if best is None:
        console.print("No candidate completed: nothing passed the budget check or every training failed; "
                      f"see {out_dir}/trials.csv.")
        raise typer.Exit(1)
    for line in answer_lines(best):
        console.print(line, markup=False, highlight=False)
    phis = "-3..0" if options["budget"] < 1 else "1..7"  # a step down's family lies below φ = 0
    console.print(f"Wrote {out_dir}/trials.csv and {out_dir}/best.json. Next: scalesearch expand --phi {phis} "
                  f"--from {out_dir}")
    if not result.complete:
        console.print("The study is not complete: some candidates are unsettled; run the same command to finish.")
        raise typer.Exit(1)


_invoked_args: list[str] = []
_interrupt_reported = False  # the command said in its own words that it was interrupted


def _reported_interrupt() -> None:
    global _interrupt_reported
    _interrupt_reported = True



def _command_line() -> str:
    """The command as the user typed it, recorded in best.json's provenance."""
    import shlex

    return " ".join(shlex.quote(a) for a in ["scalesearch", *_invoked_args])


def _count_option(value: int) -> int:
    if not 1 <= value <= MAX_WORKERS:
        raise typer.BadParameter(f"must be a whole number from 1 to {MAX_WORKERS}, got {value}")
    return value


def _jobs_option(value: str) -> int | str:
    if value == "auto":
        return value
    try:
        return _count_option(int(value))
    except ValueError:
        raise typer.BadParameter(f"must be 'auto' or a whole number from 1 to {MAX_WORKERS}, got {value!r}") from None


JOBS = _option("jobs", config=WorkerOptions, callback=_jobs_option, envvar="SCALESEARCH_JOBS")
THREADS = _option("threads", callback=lambda v: v if v is None else _count_option(v))


def _devices_option(value: Optional[str]) -> Optional[list[int]]:
    if value is None:
        return None
    parts = [p.strip() for p in value.split(",")]
    if not parts or not all(p.isdigit() for p in parts):
        raise typer.BadParameter(f"a comma-separated list of CUDA device numbers such as 0,1; got {value!r}")
    devices = [int(p) for p in parts]
    if len(set(devices)) != len(devices):
        raise typer.BadParameter(f"a device is listed twice in {value!r}; use --jobs-per-device for more workers "
                                 "per GPU")
    return devices


DEVICES_OPT = _option("devices", config=WorkerOptions, callback=_devices_option)
JOBS_PER_DEVICE = _option("jobs_per_device", config=WorkerOptions, callback=_count_option)


@app.command()
def grid(
    budget: float = BUDGET,
    step: float = STEP,
    tolerance: float = TOLERANCE, seeds: str = SEEDS, data: str = DATA, epochs: Optional[int] = EPOCHS,
    device: str = DEVICE, out: Optional[Path] = OUT, storage: Optional[str] = STORAGE,
    study: Optional[str] = STUDY, seed: int = SEED, family: str = FAMILY, alpha_level: float = ALPHA_LEVEL,
    skip_bad_images: bool = SKIP_BAD, jobs: str = JOBS, threads: Optional[int] = THREADS,
    devices: Optional[str] = DEVICES_OPT,
    jobs_per_device: int = JOBS_PER_DEVICE,
    max_params: Optional[int] = MAX_PARAMS, cost: str = COST, latency_device: str = LATENCY_DEVICE,
    latency_batch: Optional[int] = LATENCY_BATCH, refine: Optional[bool] = REFINE,
    train_images: Optional[int] = TRAIN_IMAGES, val_images: Optional[int] = VAL_IMAGES,
    proxy_width: Optional[float] = PROXY_WIDTH, proxy_depth: Optional[float] = PROXY_DEPTH,
    proxy_resolution: Optional[int] = PROXY_RESOLUTION, batch_size: Optional[int] = BATCH_SIZE,
    lr: Optional[float] = LR, image_column: Optional[str] = IMAGE_COLUMN, label_column: Optional[str] = LABEL_COLUMN,
):
    """Grid search over α and β (γ solved from the budget), training the candidates that pass the budget check."""
    _run_search("grid", locals())


@app.command()
def search(
    budget: float = BUDGET,
    trials: int = TRIALS, sampler: str = SAMPLER, pruner: str = PRUNER,
    tolerance: float = TOLERANCE, seeds: str = SEEDS, data: str = DATA, epochs: Optional[int] = EPOCHS,
    device: str = DEVICE, out: Optional[Path] = OUT, storage: Optional[str] = STORAGE,
    study: Optional[str] = STUDY, seed: int = SEED, family: str = FAMILY, alpha_level: float = ALPHA_LEVEL,
    skip_bad_images: bool = SKIP_BAD, jobs: str = JOBS, threads: Optional[int] = THREADS,
    devices: Optional[str] = DEVICES_OPT,
    jobs_per_device: int = JOBS_PER_DEVICE,
    max_params: Optional[int] = MAX_PARAMS, cost: str = COST, latency_device: str = LATENCY_DEVICE,
    latency_batch: Optional[int] = LATENCY_BATCH, refine: Optional[bool] = REFINE,
    train_images: Optional[int] = TRAIN_IMAGES, val_images: Optional[int] = VAL_IMAGES,
    proxy_width: Optional[float] = PROXY_WIDTH, proxy_depth: Optional[float] = PROXY_DEPTH,
    proxy_resolution: Optional[int] = PROXY_RESOLUTION, batch_size: Optional[int] = BATCH_SIZE,
    lr: Optional[float] = LR, image_column: Optional[str] = IMAGE_COLUMN, label_column: Optional[str] = LABEL_COLUMN,
):
    """Sample α, β, γ with Optuna on the simplex α·β²·γ² = budget (α·β·γ² for activations), training each."""
    _run_search("search", locals())


@app.command()
def compare(
    from_: Optional[Path] = typer.Option(None, "--from", help="A finished grid/search run directory: its winner "
                                         "is the compound arm, and its data, proxy, seeds and storage are used."),
    budget: Optional[float] = typer.Option(None, "--budget", parser=_budget_option,
                                           help="Without --from: the FLOP factor (default 2x); the compound arm "
                                                "is the paper's coefficients moved onto it."),
    phi: float = typer.Option(1.0, "--phi", help="Compare at budget^φ (φ = 2: do the coefficients keep their "
                                                 "edge when scaled further?)."),
    seeds: Optional[int] = typer.Option(None, "--seeds", help="Seeds per arm (default: the run winner's seed "
                                                              "indices, at least 3)."),
    data: Optional[str] = typer.Option(None, "--data", help="Without --from: as for grid (default synthetic)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Without --from: epochs per arm."),
    device: Optional[str] = typer.Option(None, "--device", envvar="SCALESEARCH_DEVICE",
                                         help="auto, cpu or cuda (default: the run's)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Where compare.json/.csv/.png/.pdf go (default: the "
                                                           "run directory, or runs/compare-<budget>x)."),
    storage: Optional[str] = STORAGE,
    seed: Optional[int] = typer.Option(None, "--seed", help="Without --from: seed of data and training."),
    family: Optional[str] = typer.Option(None, "--family", help="Without --from: " + FAMILY_HELP,
                                         callback=lambda v: v if v is None else _family_option(v)),
    tolerance: Optional[float] = typer.Option(None, "--tolerance", help="Without --from: accepted cost ratio "
                                                                        "budget^φ·(1 ± tolerance)."),
    alpha_level: float = typer.Option(0.05, "--alpha-level", help="Significance level of the verdicts."),
    fmt: str = typer.Option("table", "--format", help="table (console) or json (compare.json on stdout)."),
    skip_bad_images: bool = SKIP_BAD, jobs: str = JOBS, threads: Optional[int] = THREADS,
    devices: Optional[str] = DEVICES_OPT,
    jobs_per_device: int = JOBS_PER_DEVICE,
    cost: Optional[str] = typer.Option(None, "--cost", help="The metric every arm is brought to: flops, activations "
                                       "or latency (default: the run's, else flops)."),
    latency_device: Optional[str] = typer.Option(None, "--latency-device", help="cpu or cuda (default: the run's, "
                                                 "else cpu)."),
    latency_batch: Optional[int] = typer.Option(None, "--latency-batch", help="Batch size latency is timed at "
                                                "(default: the run's, else the proxy's training batch)."),
    train_images: Optional[int] = typer.Option(None, "--train-images", parser=_count_text,
                                               help="Without --from: as for grid (with --from: the run's)."),
    val_images: Optional[int] = typer.Option(None, "--val-images", parser=_count_text,
                                             help="Without --from: as for grid (with --from: the run's)."),
):
    """Compound scaling against depth-only, width-only and resolution-only at the same measured cost."""

    from .api import compare as run_compare
    from .comparison.verdicts import summary_lines

    if fmt not in ("table", "json"):
        raise UserError(f"unknown --format {fmt!r}; choose table or json")
    console, say, stop_bar, on_progress = _live_view(f"compare φ={phi:g}")

    def on_trial(info: dict) -> None:
        say(_trial_line(f"{info.get('arm', ''):<16}", info))

    try:
        result = run_compare(from_run=from_, budget=budget, phi=phi, seeds=seeds, data=data, epochs=epochs,
                             device=device, out=out, storage=storage, seed=seed, family=family,
                             tolerance=tolerance, significance=alpha_level, skip_bad_images=skip_bad_images,
                             threads=threads, jobs=jobs, devices=devices, jobs_per_device=jobs_per_device,
                             cost=cost, latency_device=latency_device, latency_batch=latency_batch,
                             train_images=train_images, val_images=val_images,
                             on_trial=on_trial, log_line=say, on_progress=on_progress, command_line=_command_line())
    except KeyboardInterrupt:
        stop_bar()
        console.print("Interrupted. Finished arms are saved in the study; run the same command to resume.")
        _reported_interrupt()
        raise typer.Exit(EXIT_INTERRUPTED)
    finally:
        stop_bar()
    payload = result.best
    if fmt == "json":
        import json

        print(json.dumps(payload, indent=2))
    else:
        for line in summary_lines(payload):
            console.print(line, markup=False, highlight=False)
    from .comparison.study import output_stem

    stem = output_stem(phi, cost=result.best.get("cost", {}).get("metric", "flops"))
    console.print(f"Wrote {result.out_dir}/{stem}.json and .csv" + (" and the figure (.png, .pdf)"
                                                                     if result.complete else ""))
    if not result.complete:
        console.print("The comparison is not complete: some arms are unsettled; run the same command to finish.")
        raise typer.Exit(1)


@app.command()
def report(
    from_: Path = typer.Option(..., "--from", help="A grid or search run directory (with best.json)."),
    fmt: Optional[str] = typer.Option(None, "--format", help="md, latex, csv, json or html (default: from the "
                                      "suffix of --out, else md)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the report to this file, atomically, with the "
                                       "figures beside it (default: print it; figures go into the run directory)."),
    storage: Optional[str] = typer.Option(None, "--storage", help="The study's URL when best.json could not record "
                                          "it (a database password)."),
    figures: bool = typer.Option(True, "--figures/--no-figures", help="Draw the figures (PNG and PDF)."),
    cost: Optional[str] = typer.Option(None, "--cost", help="Cost axis of the accuracy-vs-cost figure: flops, "
                                       "activations or latency (measured now for a run of another metric); "
                                       "default: the run's metric."),
    latency_device: str = LATENCY_DEVICE, latency_batch: Optional[int] = LATENCY_BATCH,
):
    """The run as tables and figures: winner and verdict, ranking, rejected candidates, provenance."""
    from .api import report_run

    console = _console()
    result = report_run(from_run=from_, format=fmt, out=out, storage=storage, figures=figures, cost=cost,
                        latency_device=latency_device, latency_batch=latency_batch)
    for note in result.notes:
        console.print(f"Note: {note}", markup=False, highlight=False)
    if out is None:
        sys.stdout.write(result.text)
    else:
        console.print(f"Wrote {out} ({result.format}).", markup=False, highlight=False)
    if result.figures:
        console.print(f"Figures: {', '.join(str(p) for p in result.figures)}", markup=False, highlight=False)


@app.command()
def train(
    alpha: Optional[float] = typer.Option(None, "--alpha", help="Depth coefficient (φ = 1 from the proxy)."),
    beta: Optional[float] = typer.Option(None, "--beta", help="Width coefficient."),
    gamma: Optional[float] = typer.Option(None, "--gamma", help="Resolution coefficient."),
    width_mult: Optional[float] = typer.Option(None, "--width-mult", callback=_positive("--width-mult")),
    depth_mult: Optional[float] = typer.Option(None, "--depth-mult", callback=_positive("--depth-mult")),
    resolution: Optional[int] = typer.Option(None, "--resolution", callback=_positive("--resolution")),
    data: str = DATA,
    epochs: Optional[int] = typer.Option(None, "--epochs", callback=_positive("--epochs")),
    seed: int = typer.Option(0, "--seed", help="Seed of data, split and initialisation; with --run-seed, the seed "
                                               "index of the run's trial to retrain."),
    run_seed: Optional[int] = typer.Option(None, "--run-seed", help="Retrain a trial of a grid/search run made with "
                                           "--seed RUN_SEED: give its network (--width-mult/--depth-mult/"
                                           "--resolution from trials.csv), data, epochs and seed index (--seed)."),
    device: str = DEVICE,
    family: str = _option("family", callback=_family_option),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    threads: Optional[int] = THREADS,
    train_images: Optional[int] = TRAIN_IMAGES, val_images: Optional[int] = VAL_IMAGES,
    batch_size: Optional[int] = BATCH_SIZE, lr: Optional[float] = LR,
    image_column: Optional[str] = IMAGE_COLUMN, label_column: Optional[str] = LABEL_COLUMN,
):
    """Train one candidate on the proxy setup and report its validation accuracy."""
    from .retrain import plan_training, train_one

    console = _console()
    plan = plan_training(alpha=alpha, beta=beta, gamma=gamma, width_mult=width_mult, depth_mult=depth_mult,
                         resolution=resolution, device=device, data=data, epochs=epochs, family=family,
                         batch_size=batch_size, lr=lr)
    result = train_one(plan, family, seed, console, show_progress=not as_json, threads=threads, run_seed=run_seed,
                       train_images=train_images, val_images=val_images,
                       data_options={k: v for k, v in (("image_column", image_column), ("label_column", label_column))
                                     if v is not None})
    if as_json:
        import json

        print(json.dumps(result))
        return
    console.print(f"val accuracy {result['accuracy']}" if result["accuracy"] is not None else
                  f"training ended: {result['status']} ({result['reason']})")
    for key in ("status", "accuracy", "test_accuracy", "num_classes", "flops", "params", "resolution", "seconds",
                "images_per_second", "device", "cuda_graph"):
        print(f"  {key:<18} {result[key]}")


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point: every user error becomes one line on stderr and exit code 2."""
    global _interrupt_reported
    command = typer.main.get_command(app)
    _invoked_args[:] = sys.argv[1:] if argv is None else argv
    _interrupt_reported = False
    try:
        code = command.main(args=argv, prog_name="scalesearch", standalone_mode=False)
    except typer.TyperException as exc:  # click's usage errors: bad option values, missing options
        message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
        say_error(message)
        sys.exit(getattr(exc, "exit_code", EXIT_USER_ERROR))
    except UserError as exc:
        sys.exit(say_error(exc))
    except (typer.Abort, KeyboardInterrupt):
        sys.exit(say_interrupted())
    if code == EXIT_INTERRUPTED and not _interrupt_reported:  # click ends an interrupted command with 130, silently
        say_interrupted()
    sys.exit(code if isinstance(code, int) else 0)
