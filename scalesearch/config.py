"""SearchConfig: everything a grid, sampler or compare run needs, validated once at the edge."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

from .errors import UserError
from .families.registry import DEFAULT_FAMILY
from .host import DEVICE_TYPES, DEVICES
from .samplers import PRUNER_FACTORIES, SAMPLER_FACTORIES
from .metrics import CostMetric
from .scaling import check_budget

SAMPLERS = tuple(SAMPLER_FACTORIES)
PRUNERS = tuple(PRUNER_FACTORIES)
# Guards against a typo building networks no machine holds (--budget 1e9); a grid's size is its strategy's check.
MAX_BUDGET = 100.0


def training_seed(*, run_seed: int, seed_index: int) -> int:
    """The seed that initialises and shuffles seed `seed_index` of a candidate in a run made with --seed
    `run_seed` (whose data and split come from `run_seed` itself): `scalesearch train --run-seed R --seed I`
    uses the same two, so it retrains that trial."""
    return run_seed * 1000 + seed_index


def latency_batch_default(latency_device: str, family: str) -> int:
    """--latency-batch of a search without --batch-size: the training batch of the proxy preset of the device
    latency is timed on (64 on the CPU, 512 on a GPU). At batch 1 a proxy's forward time is per-layer overhead
    (the CPU proxy at 59 px takes 2% longer than at 42 px for twice the multiply-adds), so no resolution could
    reach a latency budget; at its training batch the time follows the work."""
    from .proxy import proxy_for

    if latency_device not in DEVICE_TYPES:
        return 1  # the unknown device is refused by validated() with its own message
    return proxy_for(latency_device, family=family).train.batch_size


def check_count(flag: str, value) -> None:
    """An option that counts something (--max-params, --train-images, --batch-size, ...): None, or a whole number
    >= 1 (UserError naming `flag`; True is not a count)."""
    if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        raise UserError(f"{flag} must be a whole number >= 1, got {value!r}")


def check_max_params(value) -> None:
    """--max-params, where a search or an expansion takes it."""
    check_count("--max-params", value)


def check_image_counts(*, train_images, val_images) -> None:
    """--train-images and --val-images."""
    check_count("--train-images", train_images)
    check_count("--val-images", val_images)


MAX_PROXY_RESOLUTION = 1024  # a φ = 0 proxy above this is a typo on any machine this tool targets
MIN_PROXY_RESOLUTION = 16  # below, a proxy's stride-2 stages leave 1x1 feature maps before the 2x grid starts


def check_proxy_knobs(*, width, depth, resolution, batch_size, lr) -> None:
    """--proxy-width/--proxy-depth (positive, finite, at most 4), --proxy-resolution (whole pixels, 16-1024),
    --batch-size (whole, >= 1), --lr (positive, finite): UserError naming the option."""
    import math

    for flag, value in (("--proxy-width", width), ("--proxy-depth", depth)):
        if value is not None and not (isinstance(value, (int, float)) and math.isfinite(value) and 0 < value <= 4):
            raise UserError(f"{flag} must be a multiplier in (0, 4], got {value!r}")
    if resolution is not None and not (isinstance(resolution, int) and not isinstance(resolution, bool)
                                       and MIN_PROXY_RESOLUTION <= resolution <= MAX_PROXY_RESOLUTION):
        raise UserError(f"--proxy-resolution must be a whole number of pixels from {MIN_PROXY_RESOLUTION} to "
                        f"{MAX_PROXY_RESOLUTION}, got {resolution!r}")
    check_count("--batch-size", batch_size)
    if lr is not None and not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise UserError(f"--lr must be a positive number, got {lr!r}")


def check_cap_above_base(max_params: int | None, params: int, *, base: str, detail: str, consequence: str,
                         at_least: bool = False) -> None:
    """--max-params below the φ = 0 network's own parameters leaves nothing to train or list: UserError, before
    any work. `base` names it (the proxy, the network), `detail` says how it was built."""
    if max_params is not None and params > max_params:
        count = f"parameters (at least {params:,}, {detail})" if at_least else f"{params:,} parameters ({detail})"
        raise UserError(f"--max-params {max_params:,} is below the φ = 0 {base}'s own {count}: {consequence}; "
                        "raise the cap")


MAX_WORKERS = 256  # --jobs, --jobs-per-device and --threads: beyond this a typo asks, not a machine
SEARCH_MODES = ("grid", "search")  # the modes a user starts with their options (compare is built from a run)
FAMILY_HELP = ("Model family: efficientnet, resnet (ResNet-50 base), resnet18|34|50|101|152, mobilenetv2, or your "
               "own builder path/to/model.py:build or package.module:build (imports and runs that code).")


def _option(default, flag: str, help: str, *, modes: tuple[str, ...] = SEARCH_MODES):
    """A field that is also an option of the `modes` commands and API functions: its one default, flag and help."""
    return field(default=default, metadata={"flag": flag, "help": help, "modes": modes})


def option_fields(cls, mode: str) -> list:
    """The fields of `cls` (SearchConfig, WorkerOptions) that `mode`'s command and API function take."""
    return [f for f in fields(cls) if mode in f.metadata.get("modes", ())]


def option_field(cls, name: str):
    """The field `name` of `cls` (its default, flag and help)."""
    return next(f for f in fields(cls) if f.name == name)


@dataclass(frozen=True)
class SearchConfig:
    """The options of a grid, search or compare run: each option's default, flag and help live here and nowhere
    else (the commands' options and the API functions' signatures are built from them), and `validated()` holds
    every check."""

    mode: str  # a registered strategy's (engine/strategies.py): "grid", "search" or "compare"
    budget: float = _option(2.0, "--budget", "Cost factor of one φ step: 2x, 1.5x scale up; 0.5x, 0.25x scale "
                            "down.")
    step: float = _option(0.05, "--step", "Grid step of α and β.", modes=("grid",))
    tolerance: float = _option(0.1, "--tolerance", "Accepted measured cost ratio: budget·(1 ± tolerance); a network "
                               "that can only land below it is trained and marked under budget.")
    seeds: int | str = _option("auto", "--seeds", "'auto' (default): every candidate one seed, then extra paired "
                               "seeds for those not clearly behind the leader until it is separated or the cap is "
                               "hit; or a fixed count K.")
    significance: float = _option(0.05, "--alpha-level", "Significance level of the racing verdict.")
    trials: int = _option(20, "--trials", "Candidates to evaluate (rejected ones count).", modes=("search",))
    sampler: str = _option("tpe", "--sampler", "tpe, cmaes or random.", modes=("search",))
    pruner: str = _option("none", "--pruner", "none, median or hyperband (on per-epoch val accuracy).",
                          modes=("search",))
    out: Path | None = _option(None, "--out", "Run directory (default runs/<grid|search>-<budget>x); running the "
                               "same command again resumes it.")
    storage: str | None = _option(None, "--storage", "Optuna RDB URL, e.g. postgresql+psycopg://user:pw@host/db "
                                  "(default: SQLite file in --out).")
    study: str | None = _option(None, "--study", "Study name (default derived from mode and budget).")
    data: str = _option("synthetic", "--data", "'synthetic', a CIFAR folder, an ImageFolder tree or .npz.")
    device: str = _option("auto", "--device", "auto, cpu or cuda (auto: cuda where a GPU is visible).")
    epochs: int | None = _option(None, "--epochs", "Epochs per candidate (default: the proxy preset's).")
    family: str = _option(DEFAULT_FAMILY, "--family", FAMILY_HELP)
    seed: int = _option(0, "--seed", "Seed of the sampler, the data split and training.")
    skip_bad_images: bool = _option(False, "--skip-bad-images", "Skip (and count) unreadable image files instead of "
                                    "stopping at the first one.")
    threads: int | None = _option(None, "--threads", "CPU threads per training (default 1: a candidate's accuracy "
                                  "then does not depend on --jobs or the machine's cores; --jobs auto uses the "
                                  "other cores).")
    proxy_width: float | None = _option(None, "--proxy-width", "Width multiplier of the φ = 0 proxy every candidate "
                                        "is scaled from (default: the device preset's, 0.25 on the CPU, 1.0 on a "
                                        "GPU, or the family's own).")
    proxy_depth: float | None = _option(None, "--proxy-depth", "Depth multiplier of the φ = 0 proxy (default: the "
                                        "preset's, 0.5 on the CPU, 1.0 on a GPU).")
    proxy_resolution: int | None = _option(None, "--proxy-resolution", "Input size of the φ = 0 proxy in pixels "
                                           "(default: the preset's, 42 on the CPU, 72 on a GPU).")
    batch_size: int | None = _option(None, "--batch-size", "Training batch of every candidate (default: the "
                                     "preset's, 64 on the CPU, 512 on a GPU); --lr is per 128 images, so it scales "
                                     "with it.")
    lr: float | None = _option(None, "--lr", "Peak learning rate per 128 images (default: the preset's, 0.011 "
                               "AdamW on the CPU, 0.05 on a GPU).")
    image_column: str | None = _option(None, "--image-column", "With a Hugging Face dataset as --data: its image "
                                       "column (default: the Image feature, or a column named image or img).")
    label_column: str | None = _option(None, "--label-column", "With a Hugging Face dataset as --data: its label "
                                       "column (default: the ClassLabel feature, or a column named label or labels).")
    train_images: int | None = _option(None, "--train-images", "Train every candidate on this many training images "
                                       "(5000, 5k): a class-stratified subset drawn from --seed, the same in every "
                                       "worker and on resume (default: all of them).")
    val_images: int | None = _option(None, "--val-images", "Validate every candidate on this many images of the "
                                     "validation split, drawn the same way (default: all of it).")
    max_params: int | None = _option(None, "--max-params", "Reject candidates (or leave out members) with more "
                                     "parameters: 5000000, 5M, 200k.")
    cost: str = _option("flops", "--cost", "What the budget holds on: flops (multiply-adds), activations (output "
                        "elements of conv/linear layers) or latency (measured forward time).")
    latency_device: str = _option("cpu", "--latency-device", "Where --cost latency times the networks: cpu or cuda.")
    latency_batch: int | None = _option(None, "--latency-batch", "Batch size --cost latency times a forward pass at "
                                        "(default: grid and search, the proxy's training batch, 64 on the CPU and "
                                        "512 on a GPU, where the time follows the work; expand and report, 1).")
    refine: bool | None = _option(None, "--refine/--no-refine", "Decide what φ = 1 leaves open (a winner not "
                                  "separated from the runner-up, an interval over one grid step, resolution alone) at "
                                  "φ = 2: the contenders' points built again at budget², where rounding separates "
                                  "more, and raced there. Default: on a GPU, off on the CPU (a φ = 2 member trains "
                                  "2-3 times as long).")
    command_line: str = ""  # recorded in best.json's provenance

    def validated(self) -> "SearchConfig":
        """Return self (with defaults that depend on the device filled in) if every field is sensible; otherwise
        raise UserError naming the option."""
        if self.cost == "latency" and self.latency_batch is None:
            from dataclasses import replace

            from .families import resolve_family

            resolve_family(self.family)  # a bad --family is refused in its own words, before any preset is read
            batch = self.batch_size if isinstance(self.batch_size, int) and self.batch_size >= 1 else \
                latency_batch_default(self.latency_device, self.family)
            return replace(self, latency_batch=batch).validated()
        try:
            check_budget(self.budget)
        except ValueError as exc:
            raise UserError(f"--{exc}") from None
        self.metric.validated()
        if self.mode in SEARCH_MODES and self.budget > MAX_BUDGET:  # not compare: a run's own budget
            raise UserError(f"--budget {self.budget:g}x is a cost factor per φ step; above {MAX_BUDGET:g}x the proxy "
                            "would be scaled past anything compound scaling searches (EfficientNet's step is 2x): "
                            "search a smaller budget and reach large networks with expand's φ")
        if not (0 < self.step <= 1):
            raise UserError(f"--step must be in (0, 1], got {self.step:g}")
        if not (0 < self.tolerance < 1):
            raise UserError(f"--tolerance must be in (0, 1), got {self.tolerance:g}")
        if self.seeds != "auto" and not (isinstance(self.seeds, int) and self.seeds >= 1):
            raise UserError(f"--seeds must be 'auto' or a whole number >= 1, got {self.seeds!r}")
        if not (0 < self.significance < 0.5):
            raise UserError(f"--alpha-level must be in (0, 0.5), got {self.significance:g}")
        check_max_params(self.max_params)
        check_image_counts(train_images=self.train_images, val_images=self.val_images)
        check_proxy_knobs(width=self.proxy_width, depth=self.proxy_depth, resolution=self.proxy_resolution,
                          batch_size=self.batch_size, lr=self.lr)
        if self.refine not in (None, True, False):
            raise UserError(f"refine must be True, False or None (the device's default), got {self.refine!r}")
        if self.trials < 1:
            raise UserError(f"--trials must be >= 1, got {self.trials}")
        if self.sampler not in SAMPLERS:
            raise UserError(f"unknown --sampler {self.sampler!r}; choose one of {', '.join(SAMPLERS)}")
        if self.pruner not in PRUNERS:
            raise UserError(f"unknown --pruner {self.pruner!r}; choose one of {', '.join(PRUNERS)}")
        if self.device not in DEVICES:
            raise UserError(f"unknown --device {self.device!r}; choose one of {', '.join(DEVICES)}")
        if self.epochs is not None and self.epochs < 1:
            raise UserError(f"--epochs must be >= 1, got {self.epochs}")
        if self.threads is not None and not (isinstance(self.threads, int) and 1 <= self.threads <= MAX_WORKERS):
            raise UserError(f"--threads must be a whole number from 1 to {MAX_WORKERS}, got {self.threads!r}")
        if self.study is not None and not re.fullmatch(r"[A-Za-z0-9_.\-]+", self.study):
            raise UserError(f"--study {self.study!r}: use letters, digits, '.', '_' and '-'")
        if self.storage is not None and "://" not in self.storage:
            raise UserError(f"--storage {self.storage!r} is not a database URL (e.g. sqlite:///study.db or "
                            "postgresql+psycopg://user:pw@host:5432/db)")
        if self.epochs is not None:
            self.check_pruner(self.epochs)
        from .families import resolve_family

        resolve_family(self.family)  # the same check every command runs on --family
        from .fileio import probe_writable_dir

        try:
            probe_writable_dir(self.out_dir)
        except OSError as exc:
            raise UserError(f"--out: {exc}") from None
        if self.data != "synthetic" and not Path(self.data).exists():
            raise UserError(f"--data {self.data}: no such file or directory (or write 'synthetic')")
        return self

    @property
    def metric(self) -> CostMetric:
        batch = 1 if self.latency_batch is None else self.latency_batch  # None only where the metric is not latency
        return CostMetric(name=self.cost, latency_device=self.latency_device, latency_batch=batch)

    def check_pruner(self, epochs: int) -> None:
        """A pruner stops a candidate between epochs: with one epoch there is nothing to stop (UserError)."""
        if self.pruner != "none" and epochs < 2:
            raise UserError(f"--pruner {self.pruner} needs 2 or more epochs (this run trains {epochs}): a pruner "
                            "stops a candidate between epochs; use --epochs 2 or --pruner none")

    def refines_on(self, device_type: str) -> bool:
        """Whether this run refines at φ = 2: as asked, else by default on a GPU only. On 2 CPU cores a φ = 2
        member trains two to three times as long as a φ = 1 one, and the default grid must stay a few minutes."""
        if self.mode not in ("grid", "search"):
            return False
        return self.refine if self.refine is not None else device_type == "cuda"

    def seeds_label(self, proxy) -> str:
        """'auto (up to N)' or the fixed count, as recorded with the study."""
        return f"auto (up to {proxy.seed_cap})" if self.seeds == "auto" else str(self.seeds)

    def seed_cap(self, proxy) -> int:
        return proxy.seed_cap if self.seeds == "auto" else int(self.seeds)

    def proxy_options(self) -> dict:
        """The proxy knobs as `ProxyPreset.with_overrides` takes them (None: the preset's)."""
        return {"width_mult": self.proxy_width, "depth_mult": self.proxy_depth, "resolution": self.proxy_resolution,
                "epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr}

    def data_options(self) -> dict:
        """load_data's options from the user's (the proxy's sizes come from the preset)."""
        return {**({"skip_bad_images": True} if self.skip_bad_images else {}),
                **{k: v for k, v in (("image_column", self.image_column), ("label_column", self.label_column))
                   if v is not None}}

    @property
    def budget_label(self) -> str:
        return f"{self.budget:g}x"

    @property
    def _name_suffix(self) -> str:
        """Runs and studies of another metric get their own default names (FLOPs keeps the names it had)."""
        return "" if self.cost == "flops" else f"-{self.cost}"

    @property
    def out_dir(self) -> Path:
        default = Path("runs") / f"{self.mode}-{self.budget_label}{self._name_suffix}"
        return self.out if self.out is not None else default

    @property
    def study_name(self) -> str:
        return self.study or f"scalesearch-{self.mode}-{self.budget_label}{self._name_suffix}"

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{(self.out_dir / 'study.db').resolve()}"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["out"] = str(self.out_dir)
        d["storage"] = self.storage_url if self.storage else d["storage"]
        return d


@dataclass(frozen=True)
class WorkerOptions:
    """How many worker processes run one study on this machine (grid, search, compare): not part of what a trial
    measures, so not recorded with the run; the command and the API share these defaults."""

    jobs: int | str = _option("auto", "--jobs", "Worker processes on this machine for this study; 'auto' (default): "
                              "one per --threads cores on CPU (up to 16), one on a GPU. Extra workers log to "
                              "<out>/.workers/.", modes=(*SEARCH_MODES, "compare"))
    devices: list[int] | None = _option(None, "--devices", "CUDA devices to spread the workers over, e.g. 0,1 (with "
                                        "--jobs-per-device).", modes=(*SEARCH_MODES, "compare"))
    jobs_per_device: int = _option(1, "--jobs-per-device", "With --devices: worker processes per GPU (small proxies "
                                   "are launch-bound; two per GPU can add throughput).",
                                   modes=(*SEARCH_MODES, "compare"))

    def for_cost(self, cost: str) -> "WorkerOptions":
        """`--jobs auto` under a latency budget is one worker: a network timed while another trains beside it is
        timed against the contention. An explicit `--jobs N` is the user's to choose."""
        return replace(self, jobs=1) if cost == "latency" and self.jobs == "auto" else self

    def validated(self, *, device: str | None) -> "WorkerOptions":
        if self.devices is not None:
            if self.jobs not in (1, "auto"):
                raise UserError("--devices spreads the workers over GPUs: give --jobs-per-device instead of --jobs")
            if device == "cpu":
                raise UserError("--devices names CUDA devices; drop it, or use --device cuda/auto")
        if not (self.jobs == "auto" or (isinstance(self.jobs, int) and 1 <= self.jobs <= MAX_WORKERS)):
            raise UserError(f"--jobs must be 'auto' or a whole number from 1 to {MAX_WORKERS}, got {self.jobs!r}")
        if not (isinstance(self.jobs_per_device, int) and 1 <= self.jobs_per_device <= MAX_WORKERS):
            raise UserError(f"--jobs-per-device must be a whole number from 1 to {MAX_WORKERS}, got "
                            f"{self.jobs_per_device!r}")
        return self
