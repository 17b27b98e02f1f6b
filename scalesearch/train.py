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
from .errors import UserError

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
    channels_last: bool = True  # NHWC activations on every device: 1.5x faster steps on CPU too (measured)
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
    warmup_seconds: float = 0.0  # data resize + model build + graph warm-up/capture
    images_per_second: float = 0.0
    cuda_graph: bool = False
    reason: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_device(device: str) -> torch.device:
    """`auto`, `cpu` or `cuda` -> a torch device; UserError (a ValueError) when it cannot be had."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available here")
    if device not in ("cpu", "cuda"):
        raise UserError(f"unknown --device {device!r}; choose auto, cpu or cuda")
    return torch.device(device)


@dataclass
class DeviceSplits:
    """Every split resized once to the candidate's resolution, uint8, on the training device."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor | None
    test_y: torch.Tensor | None


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

    Short CPU proxies get a few hundred steps; measured here, SGD+Nesterov barely moved a width-0.25
    EfficientNet in 100-300 steps while AdamW learned the same task to >90%.
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
    the exponential running averages lag far behind: measured here, eval-mode
    accuracy of a 94%-in-train-mode proxy fell to 32%. Re-estimating the
    statistics with the final weights fixes that for the cost of a few forward passes.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()  # in place: a captured CUDA graph keeps pointing at the same buffers
        m.momentum = None  # cumulative average over the batches below
    model.train()
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
        if splits.train_x.device.type == "cuda":
            torch.cuda.empty_cache()
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return TrainResult("oom", None, seconds=time.perf_counter() - start, reason=f"out of memory: {first_line}")


def _train(model, splits: DeviceSplits, config: TrainConfig, seed, on_epoch, start) -> TrainResult:
    device = splits.train_x.device
    on_cuda = device.type == "cuda"
    autocast_dtype = torch.bfloat16 if on_cuda else None  # fp32 on CPU: bf16 there is slower, not faster
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

    lr_table = lr_schedule(total_steps, config.lr * batch / 128, config.warmup_fraction).to(device)
    step_index = torch.zeros((), dtype=torch.int64, device=device)
    lr = torch.zeros((), device=device)
    if config.optimizer == "adamw":
        optimizer = GraphSafeAdamW(model, lr, weight_decay=config.weight_decay)
    else:
        optimizer = GraphSafeSGD(model, lr, config.momentum, config.weight_decay)
    static_x = torch.empty((batch,) + tuple(splits.train_x.shape[1:]), dtype=torch.uint8, device=device)
    static_y = torch.empty(batch, dtype=torch.int64, device=device)
    loss_sum = torch.zeros((), dtype=torch.float32, device=device)
    pad = max(1, splits.train_x.shape[-1] // 16)  # crop jitter scales with resolution (4 px at 64)

    last_step = torch.tensor(total_steps - 1, device=device)

    def step() -> None:
        # index_select with a device index: no .item(), so no host sync and nothing that breaks capture.
        lr.copy_(lr_table.index_select(0, torch.minimum(step_index, last_step).view(1)).squeeze(0))
        step_index.add_(1)
        x = _normalise(augment_batch(static_x, pad), channels_last)
        with torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None,
                            cache_enabled=False):
            loss = F.cross_entropy(model(x), static_y, label_smoothing=config.label_smoothing)
        loss.backward()
        optimizer.step()
        loss_sum.add_(loss.detach().float())

    def load_batch(idx: torch.Tensor) -> None:
        static_x.copy_(splits.train_x[idx])
        static_y.copy_(splits.train_y[idx])

    graph = None
    warmup_start = time.perf_counter()
    order = torch.randperm(n, device=device, generator=gen)
    done_steps = 0
    if on_cuda and config.cuda_graph:
        graph, done_steps = _capture(step, load_batch, optimizer, order, batch, min(3, steps_per_epoch))
    warmup_seconds = time.perf_counter() - warmup_start

    result = TrainResult("ok", None, cuda_graph=graph is not None, warmup_seconds=warmup_seconds)
    train_seconds = 0.0
    images = 0
    nan_every = max(1, steps_per_epoch // config.max_nan_checks_per_epoch)
    for epoch in range(config.epochs):
        if epoch > 0:
            order = torch.randperm(n, device=device, generator=gen)
        t0 = time.perf_counter()
        first = done_steps if epoch == 0 else 0
        for i in range(first, steps_per_epoch):
            load_batch(order[i * batch:(i + 1) * batch])
            if graph is not None:
                graph.replay()
            else:
                optimizer.zero_grad()
                step()
            if (i + 1) % nan_every == 0 and not torch.isfinite(loss_sum):
                break
        if on_cuda:
            torch.cuda.synchronize()
        train_seconds += time.perf_counter() - t0
        images += (steps_per_epoch - first) * batch
        mean_loss = loss_sum.item() / max(1, steps_per_epoch)
        loss_sum.zero_()
        if not math.isfinite(mean_loss):
            result.status, result.reason = "diverged", f"loss became {mean_loss} in epoch {epoch + 1}"
            result.epochs = epoch + 1
            break
        if epoch + 1 < config.epochs and on_epoch is None and not config.eval_every_epoch:
            continue  # nobody reads this epoch's accuracy: save the BN re-estimate and the validation pass
        recalibrate_batchnorm(model, splits.train_x, config.eval_batch_size, config.bn_recalibration_images,
                              channels_last, autocast_dtype)
        acc = evaluate(model, splits.val_x, splits.val_y, config.eval_batch_size, channels_last, autocast_dtype)
        result.val_history.append(acc)
        result.accuracy, result.epochs = acc, epoch + 1
        log.debug("epoch %d loss %.4f val %.4f", epoch + 1, mean_loss, acc)
        if on_epoch is not None and on_epoch(epoch, acc) and epoch + 1 < config.epochs:
            result.status, result.reason = "pruned", f"stopped by the pruner after epoch {epoch + 1}"
            break

    if result.status == "ok" and splits.test_x is not None:
        result.test_accuracy = evaluate(model, splits.test_x, splits.test_y, config.eval_batch_size, channels_last,
                                        autocast_dtype)
    result.train_seconds = train_seconds
    result.images_per_second = images / train_seconds if train_seconds > 0 else 0.0
    result.seconds = time.perf_counter() - start
    return result


def _capture(step, load_batch, optimizer, order, batch, warmup_steps):
    """Warm up on a side stream (real training steps), then capture one whole step in a CUDA graph.

    Returns (graph or None, steps already trained). Capture failures fall back to eager with one log line.
    """
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for i in range(warmup_steps):
            load_batch(order[i * batch:(i + 1) * batch])
            optimizer.zero_grad()
            step()
    torch.cuda.current_stream().wait_stream(stream)
    optimizer.zero_grad()  # gradients are then allocated inside the graph's private pool
    graph = torch.cuda.CUDAGraph()
    try:
        with torch.cuda.graph(graph):
            step()
    except Exception as exc:  # noqa: BLE001 - any capture failure falls back, the run goes on
        if _is_oom(exc):
            raise
        log.warning("CUDA graph capture failed (%s); training this candidate eagerly", str(exc).splitlines()[0])
        torch.cuda.synchronize()
        return None, warmup_steps
    # Capture records but does not run the step: the step counter did not move; the
    # warm-up steps did train, so the epoch continues after them.
    return graph, warmup_steps


def build_and_train(
    family: str,
    *,
    width_mult: float,
    depth_mult: float,
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
