"""ResNet and MobileNetV2 against the published networks: parameters exact, multiply-adds by two counters."""

import csv
import io
import json
import math

import pytest
import torch
from torch import nn

from scalesearch.cost import count_conv_linear_macs, measure_cost
from scalesearch.families import family_names, get_family
from scalesearch.proxy import CPU_PROXY, proxy_for

# Parameter counts with 1000 classes as published for torchvision's models (facts about the published
# networks, independent of this code). The MobileNetV2 width variants are torchvision's
# mobilenet_v2(width_mult=w), counted by building torchvision 0.28's own models.
RESNET_PARAMS = {"resnet18": 11_689_512, "resnet34": 21_797_672, "resnet50": 25_557_032,
                 "resnet101": 44_549_160, "resnet152": 60_192_808}
MOBILENETV2_PARAMS = {0.35: 1_677_128, 0.5: 1_968_680, 0.75: 2_636_424, 1.0: 3_504_872, 1.3: 5_386_792,
                      1.4: 6_108_776}
# Published multiply-adds at 224 px, in billions (torchvision's documented "GFLOPS", which count MACs).
PUBLISHED_GMACS = {("resnet", 1.0): 4.09, ("resnet18", 1.0): 1.81, ("mobilenetv2", 1.0): 0.30}


def params_on_meta(family: str, width_mult: float, depth_mult: float = 1.0) -> int:
    with torch.device("meta"):
        model = get_family(family).build(width_mult=width_mult, depth_mult=depth_mult, num_classes=1000)
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", sorted(RESNET_PARAMS))
def test_resnet_depths_match_published_param_counts(name):
    assert params_on_meta(name, 1.0) == RESNET_PARAMS[name]


def test_resnet_is_resnet50():
    assert params_on_meta("resnet", 1.0) == RESNET_PARAMS["resnet50"]


@pytest.mark.parametrize("width", sorted(MOBILENETV2_PARAMS))
def test_mobilenetv2_widths_match_published_param_counts(width):
    assert params_on_meta("mobilenetv2", width) == MOBILENETV2_PARAMS[width]


def test_presets_name_the_published_variants():
    resnet = get_family("resnet").official
    assert [m.name for m in sorted(resnet.values(), key=lambda m: m.index)] == list(RESNET_PARAMS)
    mobile = get_family("mobilenetv2").official
    assert sorted(m.width_mult for m in mobile.values()) == sorted(MOBILENETV2_PARAMS)
    assert {"efficientnet", "resnet", "mobilenetv2"} <= set(family_names())


def hand_count_macs(model: nn.Module, resolution: int) -> int:
    """A third counter: forward hooks on the meta device, conv = outputs x (in/groups) x k², linear = outputs x in."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            total += output.numel() * module.in_channels // module.groups * math.prod(module.kernel_size)
        else:
            total += output.numel() * module.in_features

    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.register_forward_hook(hook)
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, resolution, resolution, device="meta"))
    return total


@pytest.mark.parametrize("family, width", sorted(PUBLISHED_GMACS))
def test_multiply_adds_agree_with_published_and_two_other_counters(family, width):
    cost = measure_cost(family, width_mult=width, depth_mult=1.0, resolution=224)
    assert cost.conv_linear_flops / 1e9 == pytest.approx(PUBLISHED_GMACS[(family, width)], rel=0.01)
    spec = get_family(family)
    # torch's FlopCounterMode (2 per multiply-add, halved) and a hook count must agree exactly on conv + linear.
    assert count_conv_linear_macs(lambda: spec.build(width, 1.0, 1000), 224) == cost.conv_linear_flops
    with torch.device("meta"):
        model = spec.build(width, 1.0, 1000)
    assert hand_count_macs(model, 224) == cost.conv_linear_flops
    # fvcore's total also counts batch-norm and pooling: a little more, never less.
    assert cost.conv_linear_flops < cost.flops < 1.06 * cost.conv_linear_flops


@pytest.mark.parametrize("family", ["resnet", "resnet18", "mobilenetv2"])
def test_multipliers_scale_blocks_and_channels(family):
    spec = get_family(family)
    base = spec.built_shape(width_mult=1.0, depth_mult=1.0)
    deeper = spec.built_shape(width_mult=1.0, depth_mult=1.5)
    wider = spec.built_shape(width_mult=1.5, depth_mult=1.0)
    assert all(d == math.ceil(1.5 * b - 1e-9) for b, d in zip(base.repeats, deeper.repeats))
    assert deeper.widths == base.widths and wider.repeats == base.repeats
    assert all(w > b and w % 8 == 0 for b, w in zip(base.widths, wider.widths))
    # The shape the cache is keyed by is the network that is built: parameters follow it.
    assert params_on_meta(family, 1.5) > params_on_meta(family, 1.0)


@pytest.mark.parametrize("family", ["resnet", "resnet18", "mobilenetv2"])
def test_small_proxy_trains_a_step(family):
    proxy = proxy_for("cpu", family=family)
    model = get_family(family).build(width_mult=proxy.width_mult, depth_mult=proxy.depth_mult, num_classes=6,
                                     dropout=0.1, stochastic_depth=0.0)
    out = model(torch.randn(4, 3, proxy.resolution, proxy.resolution))
    assert out.shape == (4, 6)
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_each_builtin_family_has_its_cpu_proxy():
    assert proxy_for("cpu") == CPU_PROXY  # EfficientNet's preset is unchanged
    for family in ("resnet", "resnet18", "mobilenetv2"):
        proxy = proxy_for("cpu", family=family)
        assert proxy.train == CPU_PROXY.train and proxy.resolution <= CPU_PROXY.image_size


def test_cost_cache_never_shares_entries_between_families():
    # resnet and resnet50 build the same network under two names; distinct networks must not collide.
    a = measure_cost("resnet18", width_mult=0.25, depth_mult=0.5, resolution=32, num_classes=6)
    b = measure_cost("resnet", width_mult=0.25, depth_mult=0.5, resolution=32, num_classes=6)
    c = measure_cost("mobilenetv2", width_mult=0.25, depth_mult=0.5, resolution=32, num_classes=6)
    assert len({a.params, b.params, c.params}) == 3


def test_expand_presets_list_the_published_variants(cli):
    code, out, err = cli("expand", "--preset", "resnet", "--phi", "0,1", "--format", "json")
    assert code == 0, err
    members = json.loads(out)["members"]
    assert [(m["name"], m["params"]) for m in members] == [(n, RESNET_PARAMS[n]) for n in ("resnet18", "resnet34")]
    assert members[0]["target_ratio"] is None  # a published table with no compound rule has no target
    code, out, err = cli("expand", "--preset", "mobilenetv2", "--phi", "-3,0", "--format", "csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["name"], int(r["params"])) for r in rows] == [("mobilenet_v2_0.35", MOBILENETV2_PARAMS[0.35]),
                                                             ("mobilenet_v2_1", MOBILENETV2_PARAMS[1.0])]
    from scalesearch.api import default_phis

    assert default_phis("resnet") == [0, 1, 2, 3, 4]
    assert default_phis("mobilenetv2") == [-3, -2, -1, 0, 1, 2]
    assert default_phis("efficientnet") == list(range(8))


# One family here (the cheapest to measure, ~25 s); benchmarks/proxy_coverage.py measures every family
# (results in benchmarks/RESULTS.md), which keeps the suite inside its time budget on 2 cores.
@pytest.mark.parametrize("family", ["resnet"])
def test_cpu_proxy_can_train_90_percent_of_the_default_grid(family):
    """Each default 2x grid point, budget-matched as `grid` does it: >= 90% land within 2x ±10% (nothing trained)."""
    from scalesearch.coverage import grid_coverage

    points = grid_coverage(family, proxy_for("cpu", family=family), budget=2.0, step=0.05, tolerance=0.1)
    assert len(points) == 36
    accepted = [p for p in points if p.accepted]
    assert len(accepted) >= 0.9 * len(points), [(p.coefficients, p.built.flops_ratio) for p in points
                                                 if not p.accepted]
    # Accepted means measured: every accepted network re-measures inside the tolerance.
    base = measure_cost(family, width_mult=proxy_for("cpu", family=family).width_mult,
                        depth_mult=proxy_for("cpu", family=family).depth_mult,
                        resolution=proxy_for("cpu", family=family).resolution, num_classes=6).flops
    for p in accepted:
        m = p.built
        flops = measure_cost(family, width_mult=m.width_mult, depth_mult=m.depth_mult, resolution=m.resolution,
                             num_classes=6).flops
        assert 1.8 <= flops / base <= 2.2
