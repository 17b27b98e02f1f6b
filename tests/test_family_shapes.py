"""A built-in family's `built_shape` names the network its builder builds.

The shape keys the FLOP cache and the reuse of trained results (`network` strings), so two multiplier pairs with
one shape must build one network (same parameters, same measured cost), two shapes must build two, and the
shape's blocks and widths must be the ones found in the built module tree.
"""

from collections import defaultdict
from functools import lru_cache

import pytest
import torch
from torch import nn

from scalesearch.cost import measure_model_cost
from scalesearch.families import family_names, get_family
from scalesearch.families.efficientnet import MBConv
from scalesearch.families.mobilenetv2 import InvertedResidual
from scalesearch.families.resnet import BasicBlock
from scalesearch.families.structure import signature

# Small networks, so that every family is traced quickly. Rounding makes some pairs one network in every
# family: depth 0.1 and 0.11 (no stage gains a block); width 0.1 and 0.11 in the families whose widths round to
# the same multiples of 8 there. Width 0.12 and depth 0.2 change the network in all but a few families.
SAMPLE = ((0.1, 0.1), (0.1, 0.11), (0.11, 0.1), (0.12, 0.1), (0.1, 0.2))
RESOLUTIONS = (32, 48)
NUM_CLASSES = 10
BLOCK_TYPES = (MBConv, InvertedResidual, BasicBlock)  # Bottleneck is a BasicBlock

FAMILIES = family_names()


@lru_cache(maxsize=None)
def built(family: str, width_mult: float, depth_mult: float) -> nn.Module:
    return get_family(family).build(width_mult=width_mult, depth_mult=depth_mult, num_classes=NUM_CLASSES)


@lru_cache(maxsize=None)
def cost(family: str, width_mult: float, depth_mult: float, resolution: int):
    return measure_model_cost(built(family, width_mult, depth_mult), resolution)


def shape(family: str, width_mult: float, depth_mult: float):
    return get_family(family).built_shape(width_mult=width_mult, depth_mult=depth_mult)


def by_shape(family: str) -> dict:
    groups = defaultdict(list)
    for w, d in SAMPLE:
        groups[shape(family, w, d)].append((w, d))
    return groups


def test_every_registered_family_is_builtin_and_states_its_shape():
    assert {"efficientnet", "mobilenetv2", "resnet", "resnet18"} <= set(FAMILIES)
    for family in FAMILIES:
        assert get_family(family).built_shape is not None, family


@pytest.mark.parametrize("family", FAMILIES)
def test_sample_has_equal_and_different_shapes(family):
    # Otherwise the tests below would compare nothing.
    groups = by_shape(family)
    assert len(groups) >= 2
    assert any(len(pairs) >= 2 for pairs in groups.values())


@pytest.mark.parametrize("family", FAMILIES)
def test_equal_shapes_build_one_network(family):
    for pairs in by_shape(family).values():
        first, *rest = pairs
        for other in rest:
            assert signature(built(family, *other)) == signature(built(family, *first)), (first, other)
            for resolution in RESOLUTIONS:
                assert cost(family, *other, resolution) == cost(family, *first, resolution), (first, other)


@pytest.mark.parametrize("family", FAMILIES)
def test_different_shapes_build_different_networks(family):
    representatives = [pairs[0] for pairs in by_shape(family).values()]
    for resolution in RESOLUTIONS:
        costs = {pair: cost(family, *pair, resolution) for pair in representatives}
        # Cost holds the parameter count and the FLOPs: one of them must tell the networks apart.
        assert len(set(costs.values())) == len(costs), (resolution, costs)


def _last_conv(module: nn.Module) -> nn.Conv2d:
    return [m for m in module.modules() if isinstance(m, nn.Conv2d)][-1]


def found_in_tree(model: nn.Module):
    """(stem width, blocks grouped by the module holding them with each block's output width, head widths)."""
    blocks = [(name, m) for name, m in model.named_modules() if isinstance(m, BLOCK_TYPES)]
    inside = {id(sub) for _, block in blocks for sub in block.modules()}
    loose = [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d) and id(m) not in inside]
    groups: dict[str, list[int]] = {}
    for name, block in blocks:
        groups.setdefault(name.rpartition(".")[0], []).append(_last_conv(block).out_channels)
    return loose[0], list(groups.values()), tuple(loose[1:])


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("width_mult, depth_mult", SAMPLE + ((0.35, 0.5), (1.0, 1.0), (1.4, 1.2)))
def test_shape_is_what_the_module_tree_holds(family, width_mult, depth_mult):
    expected = shape(family, width_mult, depth_mult)
    with torch.device("meta"):  # the tree without weights: full-size networks in milliseconds
        model = get_family(family).build(width_mult=width_mult, depth_mult=depth_mult, num_classes=NUM_CLASSES)
    stem, groups, head = found_in_tree(model)
    stages = len(expected.repeats)
    stage_widths, head_widths = expected.widths[1:1 + stages], expected.widths[1 + stages:]
    assert stem == expected.widths[0]
    assert head == head_widths
    per_block = [w for w, n in zip(stage_widths, expected.repeats) for _ in range(n)]
    assert [w for group in groups for w in group] == per_block
    assert expected.blocks == len(per_block)
    if len(groups) > 1:  # stages held in a container each (EfficientNet, ResNet): count the blocks of each
        assert [len(g) for g in groups] == list(expected.repeats)
        assert [set(g) for g in groups] == [{w} for w in stage_widths]
    else:  # one flat run of blocks, torchvision's MobileNetV2 layout: the per-block widths above are the check
        assert family == "mobilenetv2"
