"""The cost a budget holds on (`--cost`): multiply-adds, activations, or measured latency.

Every network is measured as built (rounded depth and width, matched resolution). FLOPs and activations come
from one fvcore trace (cost.py); latency is timed on a device (latency.py), so it is measured only when it is
the budget's metric. Each metric names the scaling law its grid's nominal γ follows: FLOPs d·w²·r², activations
d·w·r² (Dollár et al. 2021), latency the FLOP law for the nominal point and then the measured latency for the
budget.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import UserError
from .scaling import ACTIVATIONS_LAW, FLOPS_LAW, ScalingLaw

# The FLOP convention (the EfficientNet paper's: one fused multiply-add is one flop), stated here once; every
# table, figure, caption and best.json words it from these.
FLOP_COUNTER = "fvcore, batch 1"
FLOP_UNIT = f"multiply-adds ({FLOP_COUNTER})"
FLOP_CONVENTION = "multiply-adds (one fused multiply-add = 1 flop), counted by fvcore at batch 1, eval mode"
RUN_FLOP_CONVENTION = f"multiply-adds, {FLOP_COUNTER}, eval mode"  # as best.json's provenance has always said

METRIC_NAMES = ("flops", "activations", "latency")
_LAWS = {"flops": FLOPS_LAW, "activations": ACTIVATIONS_LAW, "latency": FLOPS_LAW}


@dataclass(frozen=True, kw_only=True)
class CostMetric:
    """What `--cost`, `--latency-device` and `--latency-batch` ask for; `value` measures one network in it."""

    name: str = "flops"
    latency_device: str = "cpu"
    latency_batch: int = 1

    def validated(self) -> "CostMetric":
        """Self, or UserError (one line) for an unknown metric, a latency device that is not there, a bad batch."""
        if self.name not in METRIC_NAMES:
            raise UserError(f"unknown --cost {self.name!r}; choose one of {', '.join(METRIC_NAMES)}")
        if self.name == "latency":
            from .latency import check_latency_batch, check_latency_device

            check_latency_device(self.latency_device)
            check_latency_batch(self.latency_batch)
        return self

    @property
    def law(self) -> ScalingLaw:
        return _LAWS[self.name]

    @property
    def is_flops(self) -> bool:
        return self.name == "flops"

    @property
    def label(self) -> str:
        """How consoles, best.json and reports state the budget's metric."""
        if self.name == "flops":
            return FLOP_UNIT
        if self.name == "activations":
            return "activations (output elements of conv and linear layers, batch 1)"
        return f"latency (median forward time, batch {self.latency_batch}, on {self.latency_device})"

    @property
    def unit(self) -> str:
        return {"flops": "multiply-adds", "activations": "activations", "latency": "ms"}[self.name]

    def identity(self) -> dict:
        """What a resumed study must have been run with (nothing for FLOPs: studies made before --cost match)."""
        if self.is_flops:
            return {}
        if self.name == "activations":
            return {"cost": self.name}
        return {"cost": self.name, "latency_device": self.latency_device, "latency_batch": self.latency_batch}

    def to_dict(self) -> dict:
        return {"metric": self.name, "law": self.law.text, "label": self.label,
                **({"latency_device": self.latency_device, "latency_batch": self.latency_batch}
                   if self.name == "latency" else {})}

    def latency(self, family: str, *, depth_mult: float, width_mult: float, resolution: int, num_classes: int):
        """The measured latency (latency.Latency), cached per network and device."""
        from .latency import measure_latency

        return measure_latency(family, depth_mult=depth_mult, width_mult=width_mult, resolution=resolution,
                               num_classes=num_classes, device=self.latency_device, batch=self.latency_batch)

    def value(self, family: str, *, depth_mult: float, width_mult: float, resolution: int, num_classes: int) -> float:
        """The network's cost in this metric."""
        if self.name == "latency":
            return self.latency(family, depth_mult=depth_mult, width_mult=width_mult, resolution=resolution,
                                num_classes=num_classes).median_ms
        from .cost import measure_cost

        cost = measure_cost(family, width_mult=width_mult, depth_mult=depth_mult, resolution=resolution,
                            num_classes=num_classes)
        return float(cost.flops if self.name == "flops" else cost.activations)


FLOPS = CostMetric()


def metric_from_dict(d: dict | None) -> CostMetric:
    """The metric a best.json or run config recorded (FLOPs where it recorded none: runs made before --cost)."""
    if not d:
        return FLOPS
    return CostMetric(name=d.get("metric", d.get("cost", "flops")), latency_device=d.get("latency_device", "cpu"),
                      latency_batch=int(d.get("latency_batch", 1)))
