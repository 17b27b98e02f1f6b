"""What a configuration costs: multiply-adds, parameters and activations.

Convention (the EfficientNet paper's): one fused multiply-add counts as one
"flop". fvcore counts that way and also counts batch-norm and pooling, so its
B0 figure (~0.40 G) sits a little above the conv+linear-only count (0.386 G).
fvcore is unmaintained and built on TorchScript tracing, so it lives behind
`measure_cost` alone; `count_conv_linear_macs` is an independent second
counter (torch.utils.flop_counter on meta tensors) used to cross-check it.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import asdict, dataclass
from functools import lru_cache

import torch
from torch import nn

from .families import get_family


# Operators fvcore counts that the paper's convention would call "conv + linear".
_CONV_LINEAR_OPS = ("conv", "linear", "addmm", "matmul", "mm", "bmm")


@dataclass(frozen=True)
class Cost:
    flops: int  # multiply-adds, everything fvcore counts (conv, linear, batch-norm, pooling)
    conv_linear_flops: int  # multiply-adds of conv and linear layers only
    params: int
    activations: int  # output elements of conv/linear layers (fvcore's activation count)

    def to_dict(self) -> dict:
        return asdict(self)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _fvcore_flops(model: nn.Module, resolution: int) -> tuple[int, int, int]:
    """(all counted multiply-adds, conv+linear multiply-adds, activations) from one fvcore trace.

    The activations (output elements of conv and linear layers, fvcore's definition) are counted by forward
    hooks during that same trace: a second forward pass for them, on meta tensors, cost more than the trace
    itself for a CPU proxy (meta ops run through Python decompositions), and budget matching asks often.
    """
    outputs, passes = [0], [0]

    def count_output(_module, _inputs, output):
        outputs[0] += int(output.numel())  # under the tracer numel() can come back as a 0-d tensor

    def count_pass(_module, _inputs, _output):
        passes[0] += 1

    handles = [m.register_forward_hook(count_output) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    handles.append(model.register_forward_hook(count_pass))
    try:
        with warnings.catch_warnings():
            # fvcore's import and tracing emit TorchScript deprecation warnings we cannot act on.
            warnings.simplefilter("ignore")
            from fvcore.nn import FlopCountAnalysis

            logging.getLogger("fvcore").setLevel(logging.ERROR)
            x = torch.zeros(1, 3, resolution, resolution)
            flops = FlopCountAnalysis(model, x).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            by_op = flops.by_operator()
            total = int(flops.total())
    finally:
        for h in handles:
            h.remove()
    conv_linear = sum(v for op, v in by_op.items() if any(k in op for k in _CONV_LINEAR_OPS))
    activations = outputs[0] // max(1, passes[0])  # one trace is one pass; divided in case fvcore ever runs more
    return total, int(conv_linear), activations


def measure_model_cost(model: nn.Module, resolution: int) -> Cost:
    """Cost of an already built model (traced in eval mode at batch 1)."""
    if resolution < 1:
        raise ValueError(f"resolution must be positive, got {resolution}")
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            total, conv_linear, activations = _fvcore_flops(model, resolution)
        params = count_params(model)
    finally:
        model.train(was_training)
    return Cost(flops=total, conv_linear_flops=conv_linear, params=params, activations=activations)


_COST_BY_SHAPE: dict[tuple, Cost] = {}


def measure_cost(
    family: str, *, depth_mult: float, width_mult: float, resolution: int, num_classes: int = 1000
) -> Cost:
    """Cost of one configuration, cached per process (search and expand re-ask often).

    Where the family states what its multipliers build, the cache is keyed by that network: rounding
    maps many (width, depth) pairs onto one network, and a grid asks for each of them (a grid's points
    collapse onto a few networks, and budget matching traces each several times).
    Every key starts with the family's identity (its name, and a user family's source hash), so two
    families, or two versions of one user file, never share an entry.
    """
    if resolution < 1:
        raise ValueError(f"resolution must be positive, got {resolution}")
    spec = get_family(family)
    if spec.built_shape is None:
        return _measure_cost(spec.identity, family, width_mult=width_mult, depth_mult=depth_mult,
                             resolution=resolution, num_classes=num_classes)
    shape = spec.built_shape(width_mult=width_mult, depth_mult=depth_mult)
    key = (spec.identity, shape.repeats, shape.widths, resolution, num_classes)
    if key not in _COST_BY_SHAPE:
        # Kept on disk too: workers of one study and later runs measure the same networks, and an fvcore trace of
        # a full-width proxy takes about a second. The key holds the counters' versions: a different count is
        # never read back.
        from .data.cache import cached_json

        _COST_BY_SHAPE[key] = cached_json(
            "costs", [_COST_FORMAT, torch.__version__, _fvcore_version(), *key],
            lambda: _measure_cost(spec.identity, family, width_mult=width_mult, depth_mult=depth_mult,
                                  resolution=resolution, num_classes=num_classes),
            load=lambda d: Cost(**d), dump=Cost.to_dict)
    return _COST_BY_SHAPE[key]


_COST_FORMAT = 1  # bump when what a Cost holds or how it is counted changes


def _fvcore_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fvcore")
    except PackageNotFoundError:
        return "?"


@lru_cache(maxsize=512)
def _measure_cost(
    identity: str, family: str, *, width_mult: float, depth_mult: float, resolution: int, num_classes: int = 1000
) -> Cost:
    """`identity` is only a cache key: the family's name plus, for a user family, its source's hash."""
    spec = get_family(family)
    if spec.is_user:
        return _measure_user_cost(spec, width_mult=width_mult, depth_mult=depth_mult, resolution=resolution,
                                  num_classes=num_classes)
    # Built on the meta device: shapes only, so no time goes into random weight init.
    # Dropout and stochastic depth do not change the cost.
    with torch.device("meta"):
        model = spec.build(width_mult=width_mult, depth_mult=depth_mult, num_classes=num_classes).eval()
    # fvcore needs real tensors; zeros (not uninitialised memory) keep the arithmetic free of NaN/denormals.
    model = model.to_empty(device="cpu")
    with torch.no_grad():
        for tensor in list(model.parameters()) + list(model.buffers()):
            tensor.zero_()
        total, conv_linear, activations = _fvcore_flops(model, resolution)
    return Cost(flops=total, conv_linear_flops=conv_linear, params=count_params(model), activations=activations)


def _measure_user_cost(spec, *, width_mult: float, depth_mult: float, resolution: int, num_classes: int) -> Cost:
    """A user's network, built for real (their code may not run on the meta device; proxies are small)."""
    from .errors import UserError

    model = spec.build(width_mult=width_mult, depth_mult=depth_mult, num_classes=num_classes).eval()
    try:
        with torch.no_grad():
            total, conv_linear, activations = _fvcore_flops(model, resolution)
    except Exception as exc:  # noqa: BLE001 - the user's forward pass: one line, not a traceback
        first = (str(exc).strip().splitlines() or [""])[0]
        raise UserError(f"--family {spec.name}: counting FLOPs of the network at width_mult={width_mult:.4g}, "
                        f"depth_mult={depth_mult:.4g}, {resolution}px failed: {type(exc).__name__}: {first}") from None
    return Cost(flops=total, conv_linear_flops=conv_linear, params=count_params(model), activations=activations)


def count_conv_linear_macs(model_factory, resolution: int) -> int:
    """Independent count: torch's FlopCounterMode on meta tensors, halved to multiply-adds.

    torch reports 2 flops per multiply-add and counts only conv and matmul, so
    half its total must equal fvcore's conv+linear multiply-adds exactly.
    """
    from torch.utils.flop_counter import FlopCounterMode

    with torch.device("meta"):
        model = model_factory().eval()
        x = torch.zeros(1, 3, resolution, resolution)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    total = counter.get_total_flops()
    assert total % 2 == 0
    return total // 2


def count_conv_linear_outputs(model_factory, resolution: int) -> int:
    """Independent count of activations: output elements of every convolution and matrix product torch runs
    (aten level, on meta tensors), at batch 1. It never looks at modules, so a layer counted twice or missed
    by the forward hooks in `_fvcore_flops` shows up as a difference."""
    from torch.utils._python_dispatch import TorchDispatchMode

    ops = {torch.ops.aten.convolution.default, torch.ops.aten.addmm.default, torch.ops.aten.mm.default,
           torch.ops.aten.bmm.default}
    total = [0]

    class Outputs(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if func in ops:
                total[0] += out.numel()
            return out

    with torch.device("meta"):
        model = model_factory().eval()
        x = torch.zeros(1, 3, resolution, resolution)
    with Outputs(), torch.no_grad():
        model(x)
    return total[0]
