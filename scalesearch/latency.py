"""Measured forward latency of a network: what `--cost latency` budgets on.

What one figure means: the median wall time of ONE forward pass of a batch of `batch` images at
`resolution` px, float32, on a freshly built network (seeded random weights: values do not change the
work) in eval mode under torch.inference_mode. It is made reproducible, not flattering:

- Warm-up is excluded: the first passes pay for allocator growth, lazy kernel selection and (on CUDA)
  cuDNN autotuning and context start-up, none of which a deployed network pays per call. Forwards run
  until both WARMUP_CALLS calls and WARMUP_S seconds have passed.
- Each of REPEATS timed repeats times as many back-to-back forwards as last about REPEAT_S, so the
  timer's resolution and the cost of reading it do not matter; a repeat's figure is its time divided by
  its forwards. The median of the repeats is reported: one repeat hit by another process on a shared
  machine moves a mean, not a median.
- `spread` is the interquartile range of the repeats divided by their median (quartiles by
  statistics.quantiles(..., n=4, method="inclusive")): 0.05 means the middle half of the repeats lay
  within 5% of the median. It says how noisy this one measurement was, not how far two runs differ
  (benchmarks/latency_spread.py measures that).
- On CPU the intra-op thread count is pinned (CPU_THREADS, 1 by default) for the measurement and
  restored afterwards: otherwise the figure would depend on OMP_NUM_THREADS, torch.set_num_threads in
  the caller and how many cores the machine has, and ranking networks by it would rank the machine.
  The garbage collector is off while timing (a collection is a pause that belongs to no network).
- On CUDA, the device is synchronized before and after each repeat (kernels are launched
  asynchronously: without it the timer measures launches, not work), and cudnn.benchmark is pinned on
  (the fastest kernels, as a deployment picks them; autotuning happens during the warm-up), so the
  caller's setting does not change the figure. TF32 stays as the caller set it (torch's default: on
  for convolutions, off for matmuls; scalesearch never changes it).

Every figure names the device it was taken on (`Latency.device`: CPU model, threads and torch version,
or the CUDA device's name), and both caches are keyed by it: figures from different machines or
settings are never mixed. Cached per process and on disk under cache_dir()/latency, like the costs of
scalesearch/cost.py.
"""

from __future__ import annotations

import gc
import math
import statistics
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from numbers import Integral

import torch

from .errors import UserError
from .families import get_family
from .host import DEVICE_TYPES as LATENCY_DEVICES

MAX_LATENCY_BATCH = 4096
CPU_THREADS = 1  # intra-op threads during a CPU measurement (see the module docstring)
WARMUP_CALLS = 3  # at least this many warm-up forwards: the first pays for allocation and autotuning
WARMUP_S = 0.05  # ...and at least this long, so caches and clocks settle
REPEATS = 15  # timed repeats; the median of 15 shrugs off a few disturbed ones
REPEAT_S = 0.01  # each repeat lasts about this long: far above perf_counter's resolution
SEED = 0  # weights and input are drawn from this seed, so every measurement times the same numbers

_LATENCY_FORMAT = 1  # bump when what a Latency holds or how it is measured changes


@dataclass(frozen=True)
class Latency:
    median_ms: float  # median time of one forward pass of one batch, in milliseconds
    spread: float  # interquartile range of the timed repeats / their median (0 = all repeats equal)
    repeats: int  # timed repeats the median is taken over
    batch: int  # images per forward pass
    device: str  # what it was measured on, e.g. "cpu (1 thread, torch 2.13.0, Intel Xeon ...)"

    def to_dict(self) -> dict:
        return asdict(self)


def check_latency_device(device: str) -> None:
    """UserError (one line) unless `device` is "cpu", or "cuda" on a machine with a CUDA device."""
    if device not in LATENCY_DEVICES:
        raise UserError(f"--latency-device {device!r} is not supported; use one of: {', '.join(LATENCY_DEVICES)}")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--latency-device cuda: no CUDA device is available on this machine; "
                        "use --latency-device cpu")


def check_latency_batch(batch) -> None:
    """UserError (one line) unless `batch` is a whole number from 1 to MAX_LATENCY_BATCH."""
    whole = (isinstance(batch, Integral) and not isinstance(batch, bool)) or (
        isinstance(batch, float) and batch.is_integer())
    if not whole or not 1 <= batch <= MAX_LATENCY_BATCH:
        raise UserError(f"--latency-batch must be a whole number from 1 to {MAX_LATENCY_BATCH}, got {batch!r}")


def describe_device(device: str, *, threads: int = CPU_THREADS) -> str:
    """The stated description a Latency carries and the caches are keyed by."""
    if device == "cuda":
        index = torch.cuda.current_device()
        return f"cuda ({torch.cuda.get_device_name(index)}, torch {torch.__version__}, CUDA {torch.version.cuda})"
    plural = "" if threads == 1 else "s"
    model = _cpu_model()
    return f"cpu ({threads} thread{plural}, torch {torch.__version__}{', ' + model if model else ''})"


def _cpu_model() -> str:
    """The CPU's model name (Linux: /proc/cpuinfo; else platform's): a shared cache dir may serve two machines."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


_LATENCY_BY_KEY: dict[tuple, Latency] = {}


def clear_latency_cache() -> None:
    """Forget the in-process figures (the disk cache stays): tests measure again or read the disk back."""
    _LATENCY_BY_KEY.clear()


def measure_latency(
    family: str, *, depth_mult: float, width_mult: float, resolution: int, num_classes: int,
    device: str = "cpu", batch: int = 1, threads: int = CPU_THREADS, cached: bool = True,
) -> Latency:
    """Median forward latency of one configuration on `device` (see the module docstring for the method).

    Cached per network and device, in this process and on disk: keyed, like measure_cost, by the network as
    built where the family states it (rounding maps many multiplier pairs onto one network), else by the
    multipliers. `cached=False` neither reads nor writes either cache: a fresh measurement, nothing kept.
    `threads` applies to CPU only.
    """
    check_latency_device(device)
    check_latency_batch(batch)
    batch = int(batch)
    if resolution < 1:
        raise ValueError(f"resolution must be positive, got {resolution}")
    if threads < 1:
        raise ValueError(f"threads must be positive, got {threads}")
    spec = get_family(family)
    description = describe_device(device, threads=threads)
    if spec.built_shape is None:
        network = ("multipliers", float(width_mult), float(depth_mult))
    else:
        shape = spec.built_shape(width_mult=width_mult, depth_mult=depth_mult)
        network = ("built", shape.repeats, shape.widths)
    key = (spec.identity, *network, int(resolution), int(num_classes), batch, description)
    if not cached:
        return _measure(spec, width_mult=width_mult, depth_mult=depth_mult, resolution=resolution,
                        num_classes=num_classes, device=device, batch=batch, threads=threads, description=description)
    if key not in _LATENCY_BY_KEY:
        from .data.cache import cached_json

        # On disk, keyed also by torch's version: a figure from another machine, setting or torch is never read.
        _LATENCY_BY_KEY[key] = cached_json(
            "latency", [_LATENCY_FORMAT, torch.__version__, *key],
            lambda: _measure(spec, width_mult=width_mult, depth_mult=depth_mult, resolution=resolution,
                             num_classes=num_classes, device=device, batch=batch, threads=threads,
                             description=description),
            load=lambda d: Latency(**d), dump=Latency.to_dict)
    return _LATENCY_BY_KEY[key]


def _measure(spec, *, width_mult: float, depth_mult: float, resolution: int, num_classes: int, device: str,
             batch: int, threads: int, description: str) -> Latency:
    # Seeded in a forked RNG: the same weights every time, and the caller's random stream is left untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        model = spec.build(width_mult=width_mult, depth_mult=depth_mult, num_classes=num_classes)
    model = model.eval().to(device)
    # Random input, not zeros: no kernel may take a shortcut on zeros, and no denormals arise from N(0, 1).
    x = torch.randn(batch, 3, resolution, resolution, generator=torch.Generator().manual_seed(SEED)).to(device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    try:
        with _pinned(device, threads), torch.inference_mode():
            per_call = _warm_up(model, x, sync)
            calls = max(1, math.ceil(REPEAT_S / max(per_call, 1e-9)))
            times = _timed_repeats(model, x, sync, calls)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - a user's forward pass: one line, not a traceback
        if not spec.is_user:
            raise
        first = (str(exc).strip().splitlines() or [""])[0]
        raise UserError(f"--family {spec.name}: timing the network at width_mult={width_mult:.4g}, "
                        f"depth_mult={depth_mult:.4g}, {resolution}px, batch {batch} on {device} failed: "
                        f"{type(exc).__name__}: {first}") from None
    median = statistics.median(times)
    q1, _, q3 = statistics.quantiles(times, n=4, method="inclusive")
    return Latency(median_ms=median * 1e3, spread=(q3 - q1) / median if median > 0 else 0.0,
                   repeats=len(times), batch=batch, device=description)


def _warm_up(model, x, sync) -> float:
    """Run forwards until WARMUP_CALLS and WARMUP_S are both reached; the seconds per forward at the end."""
    recent: list[float] = []
    start = time.perf_counter()
    while len(recent) < WARMUP_CALLS or time.perf_counter() - start < WARMUP_S:
        sync()
        t0 = time.perf_counter()
        model(x)
        sync()
        recent.append(time.perf_counter() - t0)
    return min(recent[-2:])  # the settled calls: the first ones still paid for set-up


def _timed_repeats(model, x, sync, calls: int) -> list[float]:
    """REPEATS repeats of `calls` back-to-back forwards each; seconds per forward for each repeat."""
    times = []
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a collection is a pause of the interpreter, not of the network
    try:
        for _ in range(REPEATS):
            sync()  # CUDA: start from an idle device, so earlier work is not billed to this repeat
            t0 = time.perf_counter()
            for _ in range(calls):
                model(x)
            sync()  # CUDA: the kernels launched above have finished, not merely been queued
            times.append((time.perf_counter() - t0) / calls)
    finally:
        if gc_was_enabled:
            gc.enable()
    return times


@contextmanager
def _pinned(device: str, threads: int):
    """Pin the settings the figure would otherwise inherit from the caller; put them back afterwards."""
    if device == "cpu":
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)
        return
    # TF32 is left alone: torch 2.9+ raises when its legacy and new switches are mixed, and the caller may use either.
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = True  # the fastest kernels, as a deployment picks them (autotuned in warm-up)
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before
