"""What a network *is*, read off the module a builder returned: for families whose rounding is opaque.

A built-in family states what its multipliers build (`built_shape`: blocks and channels per stage). A
user's builder states nothing, so the only place to learn what it built is the `nn.Module` itself:

- `signature` / `Structure.digest`: the module tree as built (every submodule's type, plain settings, and
  parameter and buffer shapes, in registration order), hashed. Two builds with one digest compute the same
  function of the same number of weights with the same initialisation order, so with one seed they train
  identically; a changed layer count, channel count, kernel, stride or dropout changes the digest.
- `Structure.stages`: the weight layers (parametrised conv and linear) grouped into stages by the size of
  the feature map they produce, found by one forward pass, each with its layers' output widths. This is the
  built-in families' notion of a stage (a run of blocks at one resolution), recovered without being told.

Everything here must be identical in every process (the study's workers compare digests through storage),
so nothing goes in that depends on where objects live in memory: no id(), no default object repr.
"""

from __future__ import annotations

import enum
import hashlib
import re
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import nn

#: How many hex digits of the SHA-256 name a network: 48 bits, collision-free for any study's few networks.
DIGEST_DIGITS = 12

#: The module name a user's model *file* is imported under carries its source hash (user.py); a class from it is
#: named without that, so the digest depends on what was built, not on a comment edited in the file.
_USER_FILE_MODULE_PREFIX = "scalesearch_user_model_"
_ADDRESS = re.compile(r"0x[0-9a-fA-F]+")
# nn.Module bookkeeping that says nothing about the function computed (`training` flips with .eval()).
_SKIPPED_ATTRIBUTES = {"training", "dump_patches", "call_super_init"}


@dataclass(frozen=True)
class Structure:
    """A built network's identity, and its weight layers by stage."""

    digest: str  # DIGEST_DIGITS hex digits of the SHA-256 of `signature(model)`
    weight_layers: int  # conv and linear modules that own parameters
    #: (feature-map size, output width of each weight layer run at that size), in order of first use; a flat
    #: output (a classifier after global pooling) has the size (). Measured at one probe resolution.
    stages: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]


def _type_name(cls: type) -> str:
    module = cls.__module__
    if module.startswith(_USER_FILE_MODULE_PREFIX):
        module = "<model file>"
    return f"{module}.{cls.__qualname__}"


def _value(value, depth: int = 0) -> str:
    """A module attribute as text that is the same in every process (no memory addresses)."""
    if isinstance(value, enum.Enum):
        return f"{_type_name(type(value))}.{value.name}"
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    if isinstance(value, str):
        return repr(_ADDRESS.sub("0x?", value))
    if isinstance(value, torch.Tensor):  # a plain tensor attribute (not a buffer): its shape, not its values
        return f"tensor{tuple(value.shape)}:{value.dtype}"
    if isinstance(value, (torch.dtype, torch.device)):
        return str(value)
    if depth < 3 and isinstance(value, (tuple, list)):
        return "(" + ",".join(_value(v, depth + 1) for v in value) + ")"
    if depth < 3 and isinstance(value, dict):
        return "{" + ",".join(f"{_value(k, depth + 1)}:{_value(v, depth + 1)}"
                              for k, v in sorted(value.items(), key=lambda kv: repr(kv[0]))) + "}"
    if isinstance(value, type):
        return _type_name(value)
    qualname = getattr(value, "__qualname__", None)  # functions (an activation stored as F.relu)
    if isinstance(qualname, str):
        return f"{getattr(value, '__module__', '') or ''}.{qualname}"
    return _type_name(type(value))


def _tensor_shapes(tensors) -> str:
    """name(shape) of each; a parameter the builder froze is marked (it trains differently)."""
    def frozen(t) -> str:
        return "frozen" if isinstance(t, nn.Parameter) and not t.requires_grad else ""

    return ",".join(f"{name}{tuple(t.shape)}{frozen(t)}" for name, t in tensors if t is not None)


def signature(model: nn.Module) -> list[str]:
    """One line per submodule, in registration order: path, type, plain settings, own parameters and buffers."""
    lines = []
    for path, module in model.named_modules():
        settings = ",".join(f"{k}={_value(v)}" for k, v in sorted(vars(module).items())
                            if not k.startswith("_") and k not in _SKIPPED_ATTRIBUTES
                            and not isinstance(v, nn.Module))
        lines.append(f"{path or '.'} {_type_name(type(module))} [{settings}] "
                     f"p[{_tensor_shapes(module.named_parameters(recurse=False))}] "
                     f"b[{_tensor_shapes(module.named_buffers(recurse=False))}]")
    return lines


def is_weight_layer(module: nn.Module) -> bool:
    """A convolution or a linear layer that owns a parameter: one unit of depth, whoever wrote the network."""
    return isinstance(module, (nn.modules.conv._ConvNd, nn.Linear)) and \
        any(True for _ in module.parameters(recurse=False))


def _output_width(module: nn.Module) -> int:
    return module.out_channels if isinstance(module, nn.modules.conv._ConvNd) else module.out_features


def _feature_size(module: nn.Module, output: torch.Tensor) -> tuple[int, ...]:
    """The map a layer writes: (H, W) of a convolution's output, the token shape of a linear one's (() if flat)."""
    dims = output.shape[2:] if isinstance(module, nn.modules.conv._ConvNd) else output.shape[1:-1]
    return tuple(int(d) for d in dims)


def weight_layer_stages(model: nn.Module, resolution: int) -> tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]:
    """Weight layers grouped by the size of the feature map they write, from one forward pass of a 1x3xRxR
    input in eval mode (a layer run twice counts twice: it is twice the depth)."""
    stages: dict[tuple[int, ...], list[int]] = {}

    def hook(module, _inputs, output):
        if isinstance(output, torch.Tensor):
            stages.setdefault(_feature_size(module, output), []).append(_output_width(module))

    handles = [m.register_forward_hook(hook) for m in model.modules() if is_weight_layer(m)]
    was_training = model.training
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, resolution, resolution))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return tuple((size, tuple(widths)) for size, widths in stages.items())


def structure_of(model: nn.Module, *, probe_resolution: int) -> Structure:
    text = "\n".join(signature(model))
    return Structure(digest=hashlib.sha256(text.encode()).hexdigest()[:DIGEST_DIGITS],
                     weight_layers=sum(1 for m in model.modules() if is_weight_layer(m)),
                     stages=weight_layer_stages(model, probe_resolution))


def built_structure(family: str, *, width_mult: float, depth_mult: float, num_classes: int,
                    probe_resolution: int) -> Structure:
    """The structure of what `family` builds at these multipliers (built once per process and arguments).

    A forward pass that fails is a UserError (one line), as when its cost is measured.
    """
    from .registry import get_family

    return _built_structure(get_family(family).identity, family, width_mult, depth_mult, num_classes,
                            probe_resolution)


@lru_cache(maxsize=512)
def _built_structure(identity: str, family: str, width_mult: float, depth_mult: float, num_classes: int,
                     probe_resolution: int) -> Structure:
    """`identity` is only a cache key (a user family's source hash): an edited file is built again."""
    from ..errors import UserError
    from .registry import get_family

    spec = get_family(family)
    # Built on the CPU with default options: a user's code may not run on the meta device, and the options
    # (dropout) are the same for every network of a run.
    model = spec.build(width_mult=width_mult, depth_mult=depth_mult, num_classes=num_classes)
    try:
        return structure_of(model, probe_resolution=probe_resolution)
    except Exception as exc:  # noqa: BLE001 - the user's forward pass: one line, not a traceback
        first = (str(exc).strip().splitlines() or [""])[0]
        raise UserError(f"--family {spec.name}: the network at width_mult={width_mult:.4g}, "
                        f"depth_mult={depth_mult:.4g} fails on a 1x3x{probe_resolution}x{probe_resolution} input: "
                        f"{type(exc).__name__}: {first}") from None
