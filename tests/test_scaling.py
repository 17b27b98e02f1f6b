import math

import pytest

from scalesearch.scaling import (
    FLOPS_LAW,
    Coefficients,
    coefficients_from_simplex,
    gamma_for_budget,
    grid_candidates,
    parse_budget,
    parse_phi,
    round_resolution,
)


def test_scaling_module_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, scalesearch.scaling; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize(
    "text, expected",
    [("3", [3]), ("1..7", [1, 2, 3, 4, 5, 6, 7]), ("0,2,4", [0, 2, 4]), ("-2..1", [-2, -1, 0, 1]),
     ("0, 2..3", [0, 2, 3]), ("4,4,1", [1, 4]), ("-1", [-1])],
)
def test_parse_phi(text, expected):
    assert parse_phi(text) == expected


@pytest.mark.parametrize("text", ["", "7..1", "a", "1...3", "1..", "1.5", "..3"])
def test_parse_phi_rejects(text):
    with pytest.raises(ValueError):
        parse_phi(text)


@pytest.mark.parametrize("text, expected", [("2x", 2.0), ("2", 2.0), ("1.5x", 1.5), (" 3X ", 3.0), (2.5, 2.5),
                                            ("0.5x", 0.5), ("0.25", 0.25)])
def test_parse_budget(text, expected):
    assert parse_budget(text) == expected


@pytest.mark.parametrize("text", ["1", "1x", "0", "0x", "-2", "-0.5x", "0.05x", "x", "two", "nan", "inf", ""])
def test_parse_budget_rejects(text):
    with pytest.raises(ValueError) as info:
        parse_budget(text)
    assert "\n" not in str(info.value)


def test_coefficients_move_every_dimension_one_way():
    with pytest.raises(ValueError, match="same way"):
        Coefficients(0.99, 1.1, 1.1)
    with pytest.raises(ValueError):
        Coefficients(1.0, float("nan"), 1.0)
    with pytest.raises(ValueError, match="> 0"):
        Coefficients(0.0, 0.9, 0.9)
    down = Coefficients(0.9, 0.95, 0.8)
    assert down.scales_down and not Coefficients(1.2, 1.1, 1.15).scales_down
    up = down.step_up()
    assert (up.alpha, up.beta, up.gamma) == pytest.approx((1 / 0.9, 1 / 0.95, 1 / 0.8))
    # φ = -1 of the step up is the step down itself
    assert up.scaled(-1, 224, 1).depth_mult == pytest.approx(0.9)


def test_scaled_dims_follow_powers_and_round_resolution():
    c = Coefficients(1.2, 1.1, 1.15)
    dims = c.scaled(3, 224)
    assert dims.depth_mult == pytest.approx(1.2**3)
    assert dims.width_mult == pytest.approx(1.1**3)
    # 224 * 1.15**3 = 340.7 -> nearest multiple of 8 is 344
    assert dims.resolution == 344
    assert c.scaled(3, 224, resolution_multiple=1).resolution == 341
    assert c.scaled(-1, 224).resolution == 192  # 194.8 -> 192
    assert round_resolution(3, 8) == 8


@pytest.mark.parametrize("budget", [0.25, 0.5, 1.5, 2.0, 3.0])
@pytest.mark.parametrize("s1, s2", [(0, 0), (0, 1), (1, 0), (0.3, 0.6), (0.5, 0.5), (1, 1)])
def test_simplex_meets_budget_exactly(budget, s1, s2):
    c = coefficients_from_simplex(s1, s2, budget)
    assert c.flops_factor == pytest.approx(budget, rel=1e-12)
    if budget > 1:
        assert min(c.alpha, c.beta, c.gamma) >= 1.0
    else:
        assert max(c.alpha, c.beta, c.gamma) <= 1.0


def test_grid_candidates_on_the_budget_and_stepped():
    cands = grid_candidates(2.0, step=0.05)
    assert len(cands) > 10
    for c in cands:
        assert c.flops_factor == pytest.approx(2.0, rel=1e-9)
        assert c.gamma >= 1.0
        # alpha and beta sit on the 0.05 lattice starting at 1
        assert round((c.alpha - 1) / 0.05, 6).is_integer()
        assert round((c.beta - 1) / 0.05, 6).is_integer()
    # the paper's own point is on the default grid
    assert any(math.isclose(c.alpha, 1.2) and math.isclose(c.beta, 1.1) for c in cands)
    assert gamma_for_budget(1.2, 1.1, 2.0) == pytest.approx(math.sqrt(2 / (1.2 * 1.21)))


def test_grid_size_counts_the_grid_without_building_it():
    from scalesearch.scaling import ACTIVATIONS_LAW, grid_size

    for law in (FLOPS_LAW, ACTIVATIONS_LAW):
        for budget in (0.25, 0.5, 0.8, 1.5, 2.0, 3.0, 4.0, 16.0, 64.0):
            for step in (0.02, 0.05, 0.1, 0.15):
                assert grid_size(budget, step, law) == len(grid_candidates(budget, step, law=law)), (budget, step)
    assert grid_size(2.0, 0.05) == 36  # the default grid
    assert grid_size(0.5, 0.05) == 24  # α 1 .. 0.75, β 1 .. 0.85


@pytest.mark.parametrize("budget", [0.25, 0.5, 0.8])
def test_grid_below_one_scales_every_dimension_down_on_the_budget(budget):
    cands = grid_candidates(budget, step=0.05)
    assert cands and Coefficients(1.0, 1.0, math.sqrt(budget)) in cands
    for c in cands:
        assert max(c.alpha, c.beta, c.gamma) <= 1.0
        assert c.flops_factor == pytest.approx(budget, rel=1e-9)
        assert round((1 - c.alpha) / 0.05, 6).is_integer() and round((1 - c.beta) / 0.05, 6).is_integer()


@pytest.mark.parametrize("budget", [0.5, 2.0])
def test_activation_law_solves_gamma_from_alpha_beta_gamma_squared(budget):
    from scalesearch.scaling import ACTIVATIONS_LAW

    cands = grid_candidates(budget, step=0.05, law=ACTIVATIONS_LAW)
    for c in cands:
        assert c.alpha * c.beta * c.gamma**2 == pytest.approx(budget, rel=1e-9)
    # width is cheaper in activations than in FLOPs, so the grid reaches wider: up to budget^0.5
    assert max(abs(c.beta - 1) for c in cands) > max(abs(c.beta - 1) for c in grid_candidates(budget, 0.05)) + 0.05
    for s1, s2 in [(0, 0), (0.3, 0.6), (1, 1)]:
        c = coefficients_from_simplex(s1, s2, budget, ACTIVATIONS_LAW)
        assert c.factor(ACTIVATIONS_LAW) == pytest.approx(budget, rel=1e-12)
