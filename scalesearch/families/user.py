"""A user's own network as a family: `path/to/model.py:build` or `package.module:build`.

The contract (README, "Your own network"):

    def build(width_mult: float, depth_mult: float, num_classes: int, **kwargs) -> torch.nn.Module

- width_mult, depth_mult and num_classes are passed by keyword. The builder decides how a multiplier
  becomes channels and blocks (round as it likes; FLOPs are measured on what it returns).
- Optional keywords, passed only when the builder names them or takes **kwargs: `dropout` and
  `stochastic_depth` (the trainer's settings).
- Optional module-level settings: `SCALESEARCH_PROXY = {"width_mult": 1.0, "depth_mult": 1.0,
  "resolution": 32}` (the φ = 0 proxy searched from; defaults shown, 64 px on a GPU) and
  `BASE_RESOLUTION = 224` (φ = 0's input size in `expand`).
- A builder that cannot honour a multiplier raises (ValueError, say): scalesearch reports it.

Loading a file runs it as Python code, with the user's rights: it is the user's own code.
Everything that can go wrong here is a UserError: one line, exit code 2, before any training.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from pathlib import Path

import torch
from torch import nn

from ..errors import UserError
from .spec import FamilySpec, ProxyDims

OPTIONAL_KEYWORDS = ("dropout", "stochastic_depth")
DEFAULT_CPU_PROXY = ProxyDims(width_mult=1.0, depth_mult=1.0, resolution=32)
DEFAULT_GPU_PROXY = ProxyDims(width_mult=1.0, depth_mult=1.0, resolution=64)

_LOADED: dict[tuple[str, str], FamilySpec] = {}  # (reference, source SHA-256) -> spec


def _first_line(exc: BaseException) -> str:
    text = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def split_reference(ref: str) -> tuple[str, str, bool]:
    """(file path or module name, function name, is_file) of `target:function`."""
    target, _, function = ref.rpartition(":")
    if not target or not function.isidentifier():
        raise UserError(f"--family {ref!r}: write path/to/model.py:build or package.module:build")
    is_file = target.endswith(".py") or "/" in target or "\\" in target
    return target, function, is_file


def display_name(ref: str) -> str:
    """`vgg.py:build` for `examples/user_model/vgg.py:build`: short, for network names (the source hash, not the
    directory, is what identifies the code); a module reference stays as it is."""
    target, function, is_file = split_reference(ref)
    return f"{Path(target).name}:{function}" if is_file else ref


def load_user_family(ref: str) -> FamilySpec:
    """The family behind `ref`, loaded once per content of its source (a changed file is loaded again)."""
    target, function, is_file = split_reference(ref)
    if is_file:
        path = Path(target)
        if not path.is_file():
            raise UserError(f"--family {ref}: no such file {target}")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if (ref, digest) not in _LOADED:
            _LOADED[(ref, digest)] = _spec(ref, _import_file(ref, path, digest), function, digest)
        return _LOADED[(ref, digest)]
    module = _import_module(ref, target)
    digest = _module_digest(module, target)
    if (ref, digest) not in _LOADED:
        _LOADED[(ref, digest)] = _spec(ref, module, function, digest)
    return _LOADED[(ref, digest)]


def _import_file(ref: str, path: Path, digest: str):
    name = f"scalesearch_user_model_{digest[:16]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UserError(f"--family {ref}: cannot load {path} as a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up here while they load
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - anything the user's file raises is reported, one line
        del sys.modules[name]
        raise UserError(f"--family {ref}: running {path} failed: {_first_line(exc)}") from None
    return module


def _import_module(ref: str, target: str):
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name and (target == exc.name or target.startswith(exc.name + ".")):
            raise UserError(f"--family {ref}: no module named {target!r} on the Python path (a file needs "
                            "its .py suffix or a /)") from None
        raise UserError(f"--family {ref}: importing {target} failed: {_first_line(exc)}") from None
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"--family {ref}: importing {target} failed: {_first_line(exc)}") from None


def _module_digest(module, target: str) -> str:
    try:
        source = Path(inspect.getsourcefile(module) or "").read_bytes()
    except (OSError, TypeError):
        source = target.encode()
    return hashlib.sha256(source).hexdigest()


def _spec(ref: str, module, function: str, digest: str) -> FamilySpec:
    fn = getattr(module, function, None)
    if fn is None:
        defined = sorted(n for n, v in vars(module).items() if inspect.isfunction(v) and not n.startswith("_"))
        raise UserError(f"--family {ref}: no function {function!r} there (it defines: "
                        f"{', '.join(defined) or 'no functions'})")
    if not callable(fn):
        raise UserError(f"--family {ref}: {function!r} is a {type(fn).__name__}, not a function")
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        signature = None
    if signature is not None:
        try:
            signature.bind(width_mult=1.0, depth_mult=1.0, num_classes=10)
        except TypeError:
            raise UserError(f"--family {ref}: {function}{signature} must accept width_mult, depth_mult and "
                            "num_classes as keyword arguments") from None
    proxy = _proxy_setting(ref, module)
    base_resolution = getattr(module, "BASE_RESOLUTION", 224)
    if not isinstance(base_resolution, int) or base_resolution < 1:
        raise UserError(f"--family {ref}: BASE_RESOLUTION must be a positive whole number, got {base_resolution!r}")
    return FamilySpec(name=ref, build=_adapted(ref, fn, signature), base_resolution=base_resolution,
                      dropout_for_phi=lambda phi: None, display_prefix="φ", built_shape=None,
                      cpu_proxy=proxy or DEFAULT_CPU_PROXY, gpu_proxy=proxy or DEFAULT_GPU_PROXY,
                      source_hash=digest)


def _proxy_setting(ref: str, module) -> ProxyDims | None:
    setting = getattr(module, "SCALESEARCH_PROXY", None)
    if setting is None:
        return None
    try:
        dims = ProxyDims(width_mult=float(setting["width_mult"]), depth_mult=float(setting["depth_mult"]),
                         resolution=int(setting["resolution"]))
    except (KeyError, TypeError, ValueError):
        raise UserError(f"--family {ref}: SCALESEARCH_PROXY must be a dict with width_mult, depth_mult and "
                        f"resolution, got {setting!r}") from None
    if min(dims.width_mult, dims.depth_mult) <= 0 or dims.resolution < 8:
        raise UserError(f"--family {ref}: SCALESEARCH_PROXY needs positive multipliers and a resolution >= 8")
    return dims


def _adapted(ref: str, fn, signature):
    """build(width_mult=, depth_mult=, num_classes=, **optional) -> nn.Module, with one-line errors."""
    takes_any = signature is None or any(p.kind is inspect.Parameter.VAR_KEYWORD
                                         for p in signature.parameters.values())
    named = set(signature.parameters) if signature is not None else set()

    def build(width_mult: float, depth_mult: float, num_classes: int, **optional) -> nn.Module:
        passed = {k: v for k, v in optional.items() if k in OPTIONAL_KEYWORDS and (takes_any or k in named)}
        call = f"build(width_mult={width_mult:.4g}, depth_mult={depth_mult:.4g}, num_classes={num_classes})"
        try:
            model = fn(width_mult=width_mult, depth_mult=depth_mult, num_classes=num_classes, **passed)
        except Exception as exc:  # noqa: BLE001 - the user's code: report what it raised, one line
            raise UserError(f"--family {ref}: {call} raised {_first_line(exc)}") from None
        if not isinstance(model, nn.Module):
            raise UserError(f"--family {ref}: {call} returned a {type(model).__name__}, not a torch.nn.Module")
        return model

    return build


def probe_family(spec: FamilySpec, *, multipliers: list[tuple[float, float]], resolution: int,
                 num_classes: int) -> None:
    """Build a user family at each (depth_mult, width_mult) and run a batch of 2 at `resolution` in eval mode.

    Raises UserError if a build fails, the forward pass fails, or the output is not logits of shape
    (2, num_classes). Built-in families are trusted and not probed.
    """
    if not spec.is_user:
        return
    x = torch.randn(2, 3, resolution, resolution, generator=torch.Generator().manual_seed(0))
    for depth_mult, width_mult in multipliers:
        model = spec.build(width_mult=width_mult, depth_mult=depth_mult, num_classes=num_classes).eval()
        where = f"the network built at width_mult={width_mult:.4g}, depth_mult={depth_mult:.4g}"
        try:
            with torch.no_grad():
                out = model(x)
        except Exception as exc:  # noqa: BLE001
            raise UserError(f"--family {spec.name}: {where} fails on a 2x3x{resolution}x{resolution} input: "
                            f"{_first_line(exc)}") from None
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        if shape != (2, num_classes):
            raise UserError(f"--family {spec.name}: {where} returns {shape} for a batch of 2; expected logits "
                            f"of shape (2, {num_classes})")
