"""The EfficientNet builder against the reference implementation's published counts."""

import pytest
import torch

from scalesearch.families import family_names, get_family
from scalesearch.families.efficientnet import round_channels, round_repeats

# Parameter counts with 1000 classes, as published for the reference PyTorch implementation (torchvision).
REFERENCE_PARAMS = {
    "b0": 5_288_548, "b1": 7_794_184, "b2": 9_109_994, "b3": 12_233_232,
    "b4": 19_341_616, "b5": 30_389_784, "b6": 43_040_704, "b7": 66_347_960,
}


@pytest.mark.parametrize("variant", sorted(REFERENCE_PARAMS))
def test_official_variants_match_reference_param_counts(variant):
    spec = get_family("efficientnet")
    m = spec.official[variant]
    with torch.device("meta"):
        model = spec.build(width_mult=m.width_mult, depth_mult=m.depth_mult, num_classes=1000)
    assert sum(p.numel() for p in model.parameters()) == REFERENCE_PARAMS[variant]


def test_registry():
    assert "efficientnet" in family_names()
    with pytest.raises(KeyError, match="unknown family"):
        get_family("resnet-nope")


def test_rounding_helpers():
    assert round_channels(32, 1.0) == 32
    assert round_channels(32, 1.1) == 32  # 35.2 -> int(39.2)//8*8 = 32 >= 0.9*35.2
    assert round_channels(17, 0.7) == 16  # 11.9 -> 8 would lose over 10% -> +8
    assert round_channels(16, 0.1) == 8  # never below the divisor
    assert round_channels(1280 / 4, 2.0) == 640
    assert round_repeats(3, 1.0) == 3
    assert round_repeats(1, 1.2) == 2
    assert round_repeats(3, 1.2**2) == 5  # 4.32 -> 5
    assert round_repeats(2, 1.5) == 3


def test_b0_structure_and_forward():
    spec = get_family("efficientnet")
    model = spec.build(width_mult=1.0, depth_mult=1.0, num_classes=10, dropout=0.2, stochastic_depth=0.2).eval()
    assert model.num_blocks == 16
    assert model.classifier[1].in_features == 1280
    # Stochastic depth grows linearly with block index; the last residual block is index 14
    # (block 15 maps 192 -> 320 channels and has no residual), the first residual one index 1.
    rates = [m.p for m in model.modules() if m.__class__.__name__ == "StochasticDepth"]
    assert max(rates) == pytest.approx(0.2 * 14 / 16)
    assert min(rates) == pytest.approx(0.2 * 2 / 16)
    # SE squeeze width follows the block input: first block 32 // 4 = 8, second 16 // 4 = 4.
    squeezes = [m.reduce.out_channels for m in model.modules() if m.__class__.__name__ == "SqueezeExcite"]
    assert squeezes[:3] == [8, 4, 6]
    out = model(torch.randn(2, 3, 64, 64))
    assert out.shape == (2, 10)


def test_stochastic_depth_only_in_training():
    spec = get_family("efficientnet")
    model = spec.build(width_mult=0.25, depth_mult=0.5, num_classes=3, dropout=0.0, stochastic_depth=0.9)
    # A fresh build's residual branches end in a zeroed BatchNorm (each block starts as the identity), so
    # dropping one would change nothing yet: give them the weight training would.
    with torch.no_grad():
        for block in model.modules():
            if getattr(block, "residual_end", None) is not None:
                block.residual_end.weight.fill_(1.0)
    x = torch.randn(4, 3, 32, 32)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    torch.manual_seed(0)
    a = model(x)
    torch.manual_seed(1)
    b = model(x)
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("family", ["efficientnet", "mobilenetv2", "resnet18", "resnet50"])
def test_every_residual_block_starts_as_the_identity(family):
    """The BatchNorm closing each residual branch starts at zero (Goyal et al.), so every block with a plain
    shortcut passes its input through at init (ResNet's after its ReLU): a deeper network starts as the function
    of a shallower one. Checked on the inputs each block actually sees in a forward pass."""
    torch.manual_seed(0)
    model = get_family(family).build(width_mult=0.5, depth_mult=1.0, num_classes=5).eval()
    seen = []

    def record(block, inputs, output):
        seen.append((block, inputs[0].detach(), output.detach()))

    blocks = [m for m in model.modules() if getattr(m, "residual_end", None) is not None]
    handles = [b.register_forward_hook(record) for b in blocks]
    with torch.no_grad():
        model(torch.randn(2, 3, 64, 64))
    for h in handles:
        h.remove()
    plain = [(b, x, y) for b, x, y in seen if isinstance(getattr(b, "shortcut", torch.nn.Identity()), torch.nn.Identity)]
    assert len(plain) >= 3
    for block, x, y in plain:
        expected = torch.relu(x) if family.startswith("resnet") else x
        assert torch.equal(y, expected), type(block).__name__
    # Blocks without a shortcut keep a live branch (zeroing it would cut the signal).
    no_shortcut = [m for m in model.modules() if getattr(m, "use_residual", True) is False]
    assert all(m.residual_end is None for m in no_shortcut)
