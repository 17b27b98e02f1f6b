"""The proxy trainer: one candidate, data already on the device, one CUDA graph per training step.

Small proxies are launch-bound: eager PyTorch spends most of a 64 px step
launching kernels. So on CUDA the *whole* step (augment, forward, backward,
optimizer) is captured once in a CUDA graph and replayed; the learning-rate
schedule lives in a device tensor indexed by a device step counter so replay
needs no host work. On CPU the same step function runs eagerly in fp32.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .data import ImageData, augment_batch, resize_on_device

log = logging.getLogger("scalesearch.train")

# Per-channel normalisation of uint8 input; fixed constants keep every candidate comparable.
_MEAN, _STD = 0.5 * 255, 0.25 * 255


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 4
    batch_size: int = 128
    lr: float = 0.2  # peak learning rate (reached after warm-up)
    momentum: float = 0.9
    weight_decay: float = 5e-4  # on conv/linear weights only, not on norms and biases
    label_smoothing: float = 0.1
    warmup_fraction: float = 0.1  # share of all steps spent ramping the learning rate up
    dropout: float = 0.2
    stochastic_depth: float = 0.0  # proxies are short; dropping blocks mostly adds noise there
    eval_batch_size: int = 512
    bn_recalibration_images: int = 1024  # training images used to re-estimate BatchNorm statistics per epoch
    cuda_graph: bool = True
    optimizer: str = "sgd"  # "sgd" (Nesterov) or "adamw"; lr is the peak per 128 images either way
    channels_last: bool = True  # NHWC activations on every device: faster steps on CPU too
    augment: bool = True  # random crop (reflect padding) and horizontal flip of every training batch
    eval_every_epoch: bool = False  # without a pruner only the last epoch's accuracy is used; skip the rest
    max_nan_checks_per_epoch: int = 4  # syncs to look for a diverging loss

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size < 2:
            raise ValueError(f"batch size must be >= 2, got {self.batch_size}")
        if self.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {self.optimizer!r}")
        if not self.lr > 0:
            raise ValueError(f"learning rate must be > 0, got {self.lr}")


@dataclass
class TrainResult:
    status: str  # "ok", "diverged", "oom", "pruned"
    accuracy: float | None  # validation accuracy after the last completed epoch (what selection uses)
    test_accuracy: float | None = None  # reported only, never used to choose
    val_history: list[float] = field(default_factory=list)
    epochs: int = 0
    seconds: float = 0.0  # wall time of the whole call
    train_seconds: float = 0.0  # time in training steps only
    warmup_seconds: float = 0.0  # model to the device, optimizer, CUDA-graph warm-up steps and capture
    eval_seconds: float = 0.0  # BatchNorm re-estimate, validation and test passes
    images_per_second: float = 0.0
    cuda_graph: bool = False
    reason: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class DeviceSplits:
    """Every split resized once to the candidate's resolution, uint8, on the training device."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor | None
    test_y: torch.Tensor | None


    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in vars(self).values() if t is not None)


class SplitsCache:
    """The splits resized per resolution, the most recently used kept within a memory budget.

    Rounding and budget matching build several candidates at one resolution (and racing retrains them),
    so resizing once per resolution, not once per trial, takes a resize off most trials. Budget: a
    quarter of the GPU's free memory when the run starts (other workers' included), or 1 GiB of host
    memory on the CPU; the newest entry is always kept.
    """

    def __init__(self, data: ImageData, device: torch.device, budget_bytes: int | None = None):
        self.data, self.device = data, device
        if budget_bytes is None:
            budget_bytes = torch.cuda.mem_get_info(device)[0] // 4 if device.type == "cuda" else 1 << 30
        self.budget_bytes = budget_bytes
        self._entries: dict[int, DeviceSplits] = {}  # insertion order = least recently used first

    def get(self, resolution: int) -> DeviceSplits:
        splits = self._entries.pop(resolution, None)
        if splits is None:
            self._make_room()
            splits = to_device(self.data, resolution, self.device)
        self._entries[resolution] = splits
        while len(self._entries) > 1 and sum(e.nbytes for e in self._entries.values()) > self.budget_bytes:
            del self._entries[next(iter(self._entries))]
        return splits

    def _make_room(self) -> None:
        """Drop the oldest entries while the newest would not fit beside them (a resize needs room)."""
        per_entry = max((e.nbytes for e in self._entries.values()), default=0)
        while self._entries and sum(e.nbytes for e in self._entries.values()) + per_entry > self.budget_bytes:
            del self._entries[next(iter(self._entries))]

    def __contains__(self, resolution: int) -> bool:
        return resolution in self._entries


def to_device(data: ImageData, resolution: int, device: torch.device) -> DeviceSplits:
    def put(x, y):
        if x is None:
            return None, None
        return resize_on_device(x, resolution, device), y.to(device)

    tx, ty = put(data.train_images, data.train_labels)
    vx, vy = put(data.val_images, data.val_labels)
    sx, sy = put(data.test_images, data.test_labels)
    return DeviceSplits(tx, ty, vx, vy, sx, sy)


class GraphSafeSGD:
    """SGD with Nesterov momentum whose step is pure device work (foreach ops, tensor lr).

    torch.optim.SGD reads a Python float lr, which a CUDA graph would freeze at
    capture time; here the lr is a 0-d device tensor the graph reads on replay.
    """

    def __init__(self, model: nn.Module, lr: torch.Tensor, momentum: float, weight_decay: float):
        self.decay = [p for n, p in model.named_parameters() if p.ndim > 1]  # conv and linear weights
        self.no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]  # norms and biases
        self.lr, self.momentum, self.weight_decay = lr, momentum, weight_decay
        self.buffers = {id(p): torch.zeros_like(p) for p in self.decay + self.no_decay}

    def zero_grad(self) -> None:
        for p in self.decay + self.no_decay:
            p.grad = None

    @torch.no_grad()
    def step(self) -> None:
        for params, wd in ((self.decay, self.weight_decay), (self.no_decay, 0.0)):
            params = [p for p in params if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if wd:
                grads = torch._foreach_add(grads, params, alpha=wd)
            bufs = [self.buffers[id(p)] for p in params]
            torch._foreach_mul_(bufs, self.momentum)
            torch._foreach_add_(bufs, grads)
            update = torch._foreach_add(grads, bufs, alpha=self.momentum)  # Nesterov look-ahead
            torch._foreach_mul_(update, self.lr)
            torch._foreach_sub_(params, update)


class GraphSafeAdamW(GraphSafeSGD):
    """AdamW (decoupled weight decay on conv/linear weights) whose step is pure device work, tensor lr.

    For short CPU proxies: in a few hundred steps SGD with Nesterov momentum barely moves a narrow
    EfficientNet, where AdamW learns.
    """

    def __init__(self, model: nn.Module, lr: torch.Tensor, betas=(0.9, 0.999), weight_decay: float = 0.05,
                 eps: float = 1e-8):
        self.decay = [p for n, p in model.named_parameters() if p.ndim > 1]
        self.no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
        self.lr, self.betas, self.weight_decay, self.eps = lr, betas, weight_decay, eps
        params = self.decay + self.no_decay
        self.m = {id(p): torch.zeros_like(p) for p in params}
        self.v = {id(p): torch.zeros_like(p) for p in params}
        self.t = torch.zeros((), device=lr.device)
        # Device tensors made once: creating them inside step() would copy from the host during CUDA-graph capture.
        self.b1, self.b2 = (torch.tensor(b, device=lr.device) for b in betas)

    @torch.no_grad()
    def step(self) -> None:
        b1, b2 = self.betas
        self.t.add_(1)
        c1 = 1 - torch.pow(self.b1, self.t)  # bias corrections as device tensors: nothing read back to the host
        c2 = 1 - torch.pow(self.b2, self.t)
        step_size = self.lr / c1
        for params, wd in ((self.decay, self.weight_decay), (self.no_decay, 0.0)):
            params = [p for p in params if p.grad is not None]
            if not params:
                continue
            grads = [p.grad for p in params]
            if wd:
                torch._foreach_mul_(params, 1 - self.lr * wd)
            ms, vs = [self.m[id(p)] for p in params], [self.v[id(p)] for p in params]
            torch._foreach_lerp_(ms, grads, 1 - b1)
            torch._foreach_mul_(vs, b2)
            torch._foreach_addcmul_(vs, grads, grads, value=1 - b2)
            denom = torch._foreach_div(torch._foreach_sqrt(vs), torch.sqrt(c2))
            torch._foreach_add_(denom, self.eps)
            update = torch._foreach_div(ms, denom)
            torch._foreach_mul_(update, step_size)
            torch._foreach_sub_(params, update)


def lr_schedule(total_steps: int, peak: float, warmup_fraction: float) -> torch.Tensor:
    """Linear warm-up to `peak`, then cosine decay to zero; one entry per step."""
    warmup = max(1, int(total_steps * warmup_fraction))
    steps = torch.arange(total_steps, dtype=torch.float64)
    ramp = peak * (steps + 1) / warmup
    progress = (steps - warmup).clamp(min=0) / max(1, total_steps - warmup)
    cosine = peak * 0.5 * (1 + torch.cos(math.pi * progress))
    return torch.where(steps < warmup, ramp, cosine).float()


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int, channels_last: bool,
             autocast_dtype: torch.dtype | None) -> float:
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=x.device)
    with torch.no_grad(), torch.autocast(x.device.type, dtype=autocast_dtype or torch.float32,
                                         enabled=autocast_dtype is not None):
        for start in range(0, len(y), batch_size):
            xb = _normalise(x[start:start + batch_size], channels_last)
            correct += (model(xb).argmax(1) == y[start:start + batch_size]).sum()
    model.train()
    return correct.item() / len(y)


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, x: torch.Tensor, batch_size: int, max_images: int,
                          channels_last: bool, autocast_dtype: torch.dtype | None) -> None:
    """Recompute BatchNorm running statistics as a plain average over training images ("precise BN").

    A proxy trains for a few hundred steps while its weights still move fast, so
    the exponential running averages lag far behind and eval-mode accuracy collapses.
    Re-estimating the statistics with the final weights fixes that for the cost of a
    few forward passes.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()  # in place: a captured CUDA graph keeps pointing at the same buffers
        m.momentum = None  # cumulative average over the batches below
    model.eval()  # dropout and stochastic depth off: the re-estimate draws no random numbers
    for m in norms:
        m.train()
    with torch.autocast(x.device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
        for start in range(0, min(len(x), max_images), batch_size):
            model(_normalise(x[start:start + batch_size], channels_last))
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum


def _normalise(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    x = (x.float() - _MEAN) / _STD
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, torch.OutOfMemoryError) or "out of memory" in str(exc).lower()


def train_proxy(
    model: nn.Module,
    splits: DeviceSplits,
    config: TrainConfig,
    seed: int = 0,
    on_epoch: Callable[[int, float], bool] | None = None,
) -> TrainResult:
    """Train `model` on the device-resident splits; never raises for divergence or out-of-memory.

    `on_epoch(epoch, val_accuracy)` is called after each epoch; returning True
    stops training early (an Optuna pruner's verdict) with status "pruned".
    """
    start = time.perf_counter()
    try:
        return _train(model, splits, config, seed, on_epoch, start)
    except Exception as exc:
        if not _is_oom(exc):
            raise
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # Outside the except block: its traceback still holds the frames that own the model and activations.
    if splits.train_x.device.type == "cuda":
        torch.cuda.empty_cache()
    return TrainResult("oom", None, seconds=time.perf_counter() - start, reason=f"out of memory: {first_line}")


class TrainingStep:
    """One optimisation step as pure device work, run eagerly or captured once in a CUDA graph and replayed.

    The batch lives in static buffers (`load`); the learning rate is read from a device table indexed by a
    device step counter, so a replayed graph follows the schedule with no host work. `step_index` counts
    the steps taken, eager or replayed.
    """

    def __init__(self, model: nn.Module, config: TrainConfig, *, sample_shape: tuple, batch: int, total_steps: int,
                 device: torch.device, channels_last: bool):
        self.model, self.config, self.channels_last = model, config, channels_last
        self.autocast_dtype = torch.bfloat16 if device.type == "cuda" else None  # fp32 on CPU: bf16 is slower there
        self.lr_table = lr_schedule(total_steps, config.lr * batch / 128, config.warmup_fraction).to(device)
        self.step_index = torch.zeros((), dtype=torch.int64, device=device)
        self.lr = torch.zeros((), device=device)
        if config.optimizer == "adamw":
            self.optimizer = GraphSafeAdamW(model, self.lr, weight_decay=config.weight_decay)
        else:
            self.optimizer = GraphSafeSGD(model, self.lr, config.momentum, config.weight_decay)
        self.x = torch.empty((batch,) + tuple(sample_shape), dtype=torch.uint8, device=device)
        self.y = torch.empty(batch, dtype=torch.int64, device=device)
        self.loss_sum = torch.zeros((), dtype=torch.float32, device=device)
        self.pad = max(1, sample_shape[-1] // 16) if config.augment else 0  # crop jitter: 4 px at 64
        self._last_step = torch.tensor(total_steps - 1, device=device)
        self.graph: torch.cuda.CUDAGraph | None = None

    def load(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x.copy_(x)
        self.y.copy_(y)

    def _step(self) -> None:
        # index_select with a device index: no .item(), so no host sync and nothing that breaks capture.
        self.lr.copy_(self.lr_table.index_select(0, torch.minimum(self.step_index, self._last_step).view(1))
                      .squeeze(0))
        self.step_index.add_(1)
        x = augment_batch(self.x, self.pad) if self.config.augment else self.x
        x = _normalise(x, self.channels_last)
        dtype = self.autocast_dtype
        with torch.autocast(x.device.type, dtype=dtype or torch.float32, enabled=dtype is not None,
                            cache_enabled=False):
            loss = F.cross_entropy(self.model(x), self.y, label_smoothing=self.config.label_smoothing)
        loss.backward()
        self.optimizer.step()
        self.loss_sum.add_(loss.detach().float())

    def run(self) -> None:
        """One step on the loaded batch: the graph's replay once captured, eager otherwise."""
        if self.graph is not None:
            self.graph.replay()
        else:
            self.optimizer.zero_grad()
            self._step()

    def capture(self, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> bool:
        """Train on `batches` eagerly on a side stream (warm-up), then capture one step in a CUDA graph.

        Returns whether capture succeeded; a failure leaves the step eager, with one log line.
        """
        def warm() -> None:
            for x, y in batches:
                self.load(x, y)
                self.run()

        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            sync = _first_host_sync(warm)
        torch.cuda.current_stream().wait_stream(stream)
        if sync is not None or _capture_broken:
            # A step that waits on the host cannot be captured, and a failed capture leaves the process's
            # CUDA generator and stream unusable on torch < 2.13: found during warm-up, capture is not tried.
            why = f"the step syncs with the host: {sync}" if sync else "an earlier capture in this process failed"
            log.warning("CUDA graph capture failed (%s); training this candidate eagerly", why)
            return False
        self.optimizer.zero_grad()  # gradients are then allocated inside the graph's private pool
        graph, before = torch.cuda.CUDAGraph(), torch.cuda.current_stream()
        try:
            with torch.cuda.graph(graph):
                self._step()
        except Exception as exc:  # noqa: BLE001 - any capture failure falls back, the run goes on
            _repair_after_failed_capture(graph, before)
            if _is_oom(exc):
                raise
            root = exc.__context__ or exc  # capture_end's error hides the cause
            log.warning("CUDA graph capture failed (%s); training this candidate eagerly",
                        (str(root).strip().splitlines() or [type(root).__name__])[0])
            torch.cuda.synchronize()
            return False
        # Capture records but does not run the step: the step counter did not move.
        self.graph = graph
        return True


_capture_broken = False  # a capture failed in this process: later candidates train eagerly
_failed_graphs: list = []  # kept alive: the allocator may still refer to a failed capture's pool


def _first_host_sync(fn: Callable[[], None]) -> str | None:
    """Run `fn`; the first operation in it that waits on the host (an `.item()`, a copy to the CPU), if any."""
    import warnings

    previous = torch.cuda.get_sync_debug_mode()
    torch.cuda.set_sync_debug_mode("warn")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fn()
    finally:
        torch.cuda.set_sync_debug_mode(previous)
    return next((str(w.message).splitlines()[0] for w in caught if "synchroniz" in str(w.message)), None)


def _repair_after_failed_capture(graph, stream) -> None:
    """What a failed `torch.cuda.graph` leaves behind: the capture stream current, the default generator in
    capture mode (torch < 2.13). Restore the stream, take the generator out with one capture that succeeds,
    and train eagerly from now on in this process."""
    global _capture_broken
    _capture_broken = True
    _failed_graphs.append(graph)
    if torch.cuda.current_stream() != stream:
        torch.cuda.set_stream(stream)
    try:
        probe = torch.cuda.CUDAGraph()
        with torch.cuda.graph(probe):
            torch.empty(1, device="cuda").uniform_()
    except Exception as exc:  # noqa: BLE001 - best effort; eager training will say if the state is broken
        log.debug("CUDA state after a failed capture not repaired: %s", exc)


def _train(model, splits: DeviceSplits, config: TrainConfig, seed, on_epoch, start) -> TrainResult:
    device = splits.train_x.device
    on_cuda = device.type == "cuda"
    n = len(splits.train_y)
    batch = min(config.batch_size, n)
    steps_per_epoch = n // batch  # drop the ragged last batch: static shapes for the graph
    total_steps = steps_per_epoch * config.epochs

    torch.manual_seed(seed)
    gen = torch.Generator(device=device).manual_seed(seed)
    model = model.to(device)
    channels_last = on_cuda or config.channels_last
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    model.train()
    step = TrainingStep(model, config, sample_shape=tuple(splits.train_x.shape[1:]), batch=batch,
                        total_steps=total_steps, device=device, channels_last=channels_last)
    autocast_dtype = step.autocast_dtype

    def batch_at(i: int) -> tuple[torch.Tensor, torch.Tensor]:
        idx = order[i * batch:(i + 1) * batch]
        return splits.train_x[idx], splits.train_y[idx]

    order = torch.randperm(n, device=device, generator=gen)
    done_steps = 0
    if on_cuda and config.cuda_graph:
        done_steps = min(3, steps_per_epoch)  # the warm-up steps train: the epoch continues after them
        step.capture([batch_at(i) for i in range(done_steps)])
    if on_cuda:
        torch.cuda.synchronize()
    warmup_seconds = time.perf_counter() - start

    result = TrainResult("ok", None, cuda_graph=step.graph is not None, warmup_seconds=warmup_seconds)
    train_seconds = eval_seconds = 0.0
    images = 0
    nan_every = max(1, steps_per_epoch // config.max_nan_checks_per_epoch)
    for epoch in range(config.epochs):
        if epoch > 0:
            order = torch.randperm(n, device=device, generator=gen)
        t0 = time.perf_counter()
        first = done_steps if epoch == 0 else 0
        for i in range(first, steps_per_epoch):
            step.load(*batch_at(i))
            step.run()
            if (i + 1) % nan_every == 0 and not torch.isfinite(step.loss_sum):
                break
        if on_cuda:
            torch.cuda.synchronize()
        train_seconds += time.perf_counter() - t0
        images += (steps_per_epoch - first) * batch
        mean_loss = step.loss_sum.item() / max(1, steps_per_epoch)
        step.loss_sum.zero_()
        if not math.isfinite(mean_loss):
            result.status, result.reason = "diverged", f"loss became {mean_loss} in epoch {epoch + 1}"
            result.epochs = epoch + 1
            break
        if epoch + 1 < config.epochs and on_epoch is None and not config.eval_every_epoch:
            continue  # nobody reads this epoch's accuracy: save the BN re-estimate and the validation pass
        t0 = time.perf_counter()
        recalibrate_batchnorm(model, splits.train_x, config.eval_batch_size, config.bn_recalibration_images,
                              channels_last, autocast_dtype)
        acc = evaluate(model, splits.val_x, splits.val_y, config.eval_batch_size, channels_last, autocast_dtype)
        eval_seconds += time.perf_counter() - t0
        result.val_history.append(acc)
        result.accuracy, result.epochs = acc, epoch + 1
        log.debug("epoch %d loss %.4f val %.4f", epoch + 1, mean_loss, acc)
        if on_epoch is not None and on_epoch(epoch, acc) and epoch + 1 < config.epochs:
            result.status, result.reason = "pruned", f"stopped by the pruner after epoch {epoch + 1}"
            break

    if result.status == "ok" and splits.test_x is not None:
        t0 = time.perf_counter()
        result.test_accuracy = evaluate(model, splits.test_x, splits.test_y, config.eval_batch_size, channels_last,
                                        autocast_dtype)
        eval_seconds += time.perf_counter() - t0
    result.train_seconds, result.eval_seconds = train_seconds, eval_seconds
    result.images_per_second = images / train_seconds if train_seconds > 0 else 0.0
    result.seconds = time.perf_counter() - start
    return result


def build_and_train(
    family: str,
    *,
    depth_mult: float,
    width_mult: float,
    splits: DeviceSplits,
    num_classes: int,
    config: TrainConfig,
    seed: int = 0,
    on_epoch: Callable[[int, float], bool] | None = None,
) -> TrainResult:
    """Build the candidate with a seeded init and train it: the unit of work of every trial."""
    from .families import get_family

    start = time.perf_counter()
    torch.manual_seed(seed)
    model = get_family(family).build(width_mult=width_mult, depth_mult=depth_mult, num_classes=num_classes,
                                     dropout=config.dropout, stochastic_depth=config.stochastic_depth)
    result = train_proxy(model, splits, config, seed, on_epoch)
    result.seconds = time.perf_counter() - start
    return result
