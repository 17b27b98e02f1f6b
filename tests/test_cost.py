"""Multiply-adds and parameters against the paper and against an independent counter."""

import pytest
import torch

from scalesearch.cost import count_conv_linear_macs, count_conv_linear_outputs, measure_cost, measure_model_cost
from scalesearch.families import get_family

# The paper's table 2, in billions of multiply-adds ("FLOPS" there).
PAPER_MACS = {"b0": 0.39, "b1": 0.70, "b2": 1.0, "b3": 1.8, "b4": 4.2, "b5": 9.9, "b6": 19.0, "b7": 37.0}


@pytest.mark.parametrize("variant", sorted(PAPER_MACS))
def test_official_family_macs(variant):
    spec = get_family("efficientnet")
    m = spec.official[variant]
    cost = measure_cost("efficientnet", width_mult=m.width_mult, depth_mult=m.depth_mult, resolution=m.resolution)
    # The paper's rounded figures sit a few percent below a faithful count of the architecture.
    assert cost.flops / 1e9 == pytest.approx(PAPER_MACS[variant], rel=0.08)
    # The second counter (torch's, on meta tensors, 2 per multiply-add) must agree exactly on conv + linear.
    independent = count_conv_linear_macs(lambda: spec.build(m.width_mult, m.depth_mult, 1000), m.resolution)
    assert cost.conv_linear_flops == independent
    assert cost.flops > cost.conv_linear_flops  # fvcore also counts batch-norm and pooling


def test_activations_match_fvcore_own_count():
    from fvcore.nn import ActivationCountAnalysis

    spec = get_family("efficientnet")
    model = spec.build(0.5, 0.5, 10).eval()
    expected = ActivationCountAnalysis(model, torch.zeros(1, 3, 64, 64)).unsupported_ops_warnings(False).total()
    assert measure_cost("efficientnet", width_mult=0.5, depth_mult=0.5, resolution=64, num_classes=10).activations == expected
    assert measure_model_cost(model, 64).activations == expected


@pytest.mark.parametrize("family, width, depth, resolution", [
    ("efficientnet", 1.0, 1.0, 224), ("efficientnet", 0.25, 0.5, 42), ("efficientnet", 1.1, 1.2, 97),
    ("resnet", 1.0, 1.0, 224), ("resnet18", 0.5, 1.0, 65), ("mobilenetv2", 0.35, 0.5, 40),
    ("mobilenetv2", 1.0, 1.0, 224),
])
def test_activations_agree_with_an_independent_count(family, width, depth, resolution):
    """pycls's activations (output elements of every conv and linear layer, batch 1) as measured for budgets,
    against a count of the outputs of every aten convolution and matrix product (no module hooks)."""
    spec = get_family(family)
    measured = measure_cost(family, width_mult=width, depth_mult=depth, resolution=resolution,
                            num_classes=1000).activations
    assert measured == count_conv_linear_outputs(lambda: spec.build(width, depth, 1000), resolution)
    assert measured > 0


def test_activations_of_b0_are_pycls_figure():
    """pycls's model zoo lists EfficientNet-B0 at 6.7 M activations (224 px): the built network must too."""
    acts = measure_cost("efficientnet", width_mult=1.0, depth_mult=1.0, resolution=224).activations
    assert acts / 1e6 == pytest.approx(6.7, abs=0.05)


def test_measure_model_cost_leaves_model_intact():
    spec = get_family("efficientnet")
    model = spec.build(0.5, 0.5, 10)
    before = [p.clone() for p in model.parameters()]
    cost = measure_model_cost(model, 64)
    assert model.training
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert cost == measure_cost("efficientnet", width_mult=0.5, depth_mult=0.5, resolution=64, num_classes=10)


def test_cost_scales_with_resolution_and_is_cached():
    a = measure_cost("efficientnet", width_mult=1.0, depth_mult=1.0, resolution=112)
    b = measure_cost("efficientnet", width_mult=1.0, depth_mult=1.0, resolution=224)
    assert 3.5 < b.flops / a.flops < 4.5
    assert a.params == b.params
    assert measure_cost("efficientnet", width_mult=1.0, depth_mult=1.0, resolution=112) is a


def test_cost_rejects_bad_resolution():
    with pytest.raises(ValueError):
        measure_cost("efficientnet", width_mult=1.0, depth_mult=1.0, resolution=0)
