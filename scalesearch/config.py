"""SearchConfig: everything a grid, sampler or compare run needs, validated once at the edge."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from pathlib import Path

from .errors import UserError
from .host import DEVICES
from .samplers import PRUNER_FACTORIES, SAMPLER_FACTORIES
from .metrics import CostMetric
from .scaling import check_budget, grid_size

SAMPLERS = tuple(SAMPLER_FACTORIES)
PRUNERS = tuple(PRUNER_FACTORIES)
# Guards against a typo running for days or building networks no machine holds (--budget 1e9, --step 1e-9):
# the default 2x grid has 36 points, 16x about 1,300.
MAX_BUDGET = 100.0
MAX_GRID_POINTS = 10_000


def training_seed(*, run_seed: int, seed_index: int) -> int:
    """The seed that initialises and shuffles seed `seed_index` of a candidate in a run made with --seed
    `run_seed` (whose data and split come from `run_seed` itself): `scalesearch train --run-seed R --seed I`
    uses the same two, so it retrains that trial."""
    return run_seed * 1000 + seed_index


def latency_batch_default(latency_device: str, family: str) -> int:
    """--latency-batch of a search: the training batch of the proxy preset of the device latency is timed on (64
    on the CPU, 512 on a GPU). At batch 1 a proxy's forward time is per-layer overhead (the CPU proxy at 59 px
    takes 2% longer than at 42 px for twice the multiply-adds), so no resolution could reach a latency budget; at
    its training batch the time follows the work."""
    from .proxy import proxy_for

    if latency_device not in ("cpu", "cuda"):
        return 1  # the unknown device is refused by validated() with its own message
    return proxy_for(latency_device, family=family).train.batch_size


def check_max_params(value) -> None:
    """--max-params, where a search or an expansion takes it: None, or a whole number >= 1 (UserError)."""
    if value is not None and not (isinstance(value, int) and value >= 1):
        raise UserError(f"--max-params must be a whole number >= 1, got {value!r}")


@dataclass(frozen=True)
class SearchConfig:
    mode: str  # "grid", "search" or "compare"
    budget: float = 2.0
    step: float = 0.05
    tolerance: float = 0.1
    seeds: int | str = "auto"  # "auto": race (extra seeds only for contenders); K: every candidate K seeds
    significance: float = 0.05  # level of the racing verdict's test (--alpha-level)
    trials: int = 20
    sampler: str = "tpe"
    pruner: str = "none"
    out: Path | None = None  # None: runs/<mode>-<budget>x
    storage: str | None = None  # None: SQLite file in `out`
    study: str | None = None  # None: derived from mode and budget
    data: str = "synthetic"
    device: str = "auto"
    epochs: int | None = None
    family: str = "efficientnet"
    seed: int = 0
    skip_bad_images: bool = False
    threads: int | None = None  # intra-op threads of a CPU trial; None: 1 (results then do not depend on --jobs)
    max_params: int | None = None  # candidates with more parameters are rejected (--max-params)
    cost: str = "flops"  # the metric the budget holds on (--cost): flops, activations or latency
    latency_device: str = "cpu"  # where --cost latency times the networks
    latency_batch: int | None = None  # None: the proxy's training batch (see latency_batch_default)
    refine: bool | None = None  # a φ = 2 round for what φ = 1 left open; None: on a GPU only (refines_on)
    command_line: str = ""

    def validated(self) -> "SearchConfig":
        """Return self (with defaults that depend on the device filled in) if every field is sensible; otherwise
        raise UserError naming the option."""
        if self.cost == "latency" and self.latency_batch is None:
            from dataclasses import replace

            from .families import resolve_family

            resolve_family(self.family)  # a bad --family is refused in its own words, before any preset is read
            return replace(self, latency_batch=latency_batch_default(self.latency_device, self.family)).validated()
        if self.mode not in ("grid", "search", "compare"):
            raise UserError(f"unknown mode {self.mode!r}")
        try:
            check_budget(self.budget)
        except ValueError as exc:
            raise UserError(f"--{exc}") from None
        self.metric.validated()
        if self.mode in ("grid", "search") and self.budget > MAX_BUDGET:  # not compare: a run's own budget
            raise UserError(f"--budget {self.budget:g}x is a cost factor per φ step; above {MAX_BUDGET:g}x the proxy "
                            "would be scaled past anything compound scaling searches (EfficientNet's step is 2x): "
                            "search a smaller budget and reach large networks with expand's φ")
        if not (0 < self.step <= 1):
            raise UserError(f"--step must be in (0, 1], got {self.step:g}")
        if self.mode == "grid" and (points := grid_size(self.budget, self.step, self.metric.law)) > MAX_GRID_POINTS:
            raise UserError(f"--budget {self.budget:g}x with --step {self.step:g} makes {points:,} grid points "
                            f"(at most {MAX_GRID_POINTS:,} are allowed); raise --step")
        if not (0 < self.tolerance < 1):
            raise UserError(f"--tolerance must be in (0, 1), got {self.tolerance:g}")
        if self.seeds != "auto" and not (isinstance(self.seeds, int) and self.seeds >= 1):
            raise UserError(f"--seeds must be 'auto' or a whole number >= 1, got {self.seeds!r}")
        if not (0 < self.significance < 0.5):
            raise UserError(f"--alpha-level must be in (0, 0.5), got {self.significance:g}")
        check_max_params(self.max_params)
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
        if self.threads is not None and not (isinstance(self.threads, int) and 1 <= self.threads <= 256):
            raise UserError(f"--threads must be a whole number from 1 to 256, got {self.threads!r}")
        if self.study is not None and not re.fullmatch(r"[A-Za-z0-9_.\-]+", self.study):
            raise UserError(f"--study {self.study!r}: use letters, digits, '.', '_' and '-'")
        if self.storage is not None and "://" not in self.storage:
            raise UserError(f"--storage {self.storage!r} is not a database URL (e.g. sqlite:///study.db or "
                            "postgresql+psycopg://user:pw@host:5432/db)")
        if self.pruner != "none" and self.epochs is not None and self.epochs < 2:
            raise UserError(f"--pruner {self.pruner} needs --epochs 2 or more: a pruner stops a candidate between "
                            "epochs, and one epoch leaves nothing to stop")
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

    def data_options(self) -> dict:
        return {"skip_bad_images": True} if self.skip_bad_images else {}

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
