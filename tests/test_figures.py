"""`expand --plot` and the shared figure helpers: real PNG and PDF files that show the measured numbers."""

import pytest

from conftest import one_line_error

SMALL = ["--phi", "0..2", "--alpha", "1.2", "--beta", "1.1", "--gamma", "1.15", "--base-resolution", "64",
         "--format", "csv"]


def _check_png(path):
    import matplotlib.image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[2] in (3, 4)
    assert 400 <= pixels.shape[0] <= 3000 and 600 <= pixels.shape[1] <= 3000
    assert float(pixels[..., :3].std()) > 0.02  # something is drawn


def test_expand_plot_writes_png_and_pdf(cli, in_tmp):
    code, out, err = cli("expand", *SMALL, "--plot", in_tmp / "figs" / "family")
    assert code == 0, err
    assert out.startswith("name,phi,")  # the table still goes to stdout
    _check_png(in_tmp / "figs" / "family.png")
    assert (in_tmp / "figs" / "family.pdf").read_bytes()[:5] == b"%PDF-"
    assert "family.png" in err


def test_expand_plot_with_a_suffix_writes_that_format_only(cli, in_tmp):
    code, _, err = cli("expand", *SMALL, "--plot", "family.pdf")
    assert code == 0, err
    assert (in_tmp / "family.pdf").read_bytes()[:5] == b"%PDF-"
    assert not (in_tmp / "family.png").exists()


@pytest.mark.parametrize("target, says", [("a-file/family", "--plot"), ("/proc/family", "--plot"),
                                           (".", "directory")])
def test_expand_plot_refuses_what_it_cannot_write(cli, in_tmp, target, says):
    (in_tmp / "a-file").write_text("x")
    code, out, err = cli("expand", *SMALL, "--plot", target)
    assert code == 2 and out == ""
    assert says in one_line_error(err)


def test_family_curve_draws_the_measured_members_and_the_ideal(tmp_path):
    import scalesearch
    from scalesearch.reporting.figures import family_curve

    members = scalesearch.expand(alpha=1.2, beta=1.1, gamma=1.15, phis=[-1, 0, 1, 2], base_resolution=64)
    drawn = family_curve(members, [tmp_path / "f.png", tmp_path / "f.pdf"], "family")
    _check_png(tmp_path / "f.png")
    assert (tmp_path / "f.pdf").read_bytes()[:5] == b"%PDF-"
    assert drawn.points["flops"] == [pytest.approx((m.phi, m.flops / 1e9)) for m in members]
    assert drawn.points["params"] == [pytest.approx((m.phi, m.params / 1e6)) for m in members]
    # The reference line is φ = 0's measured cost times (α·β²·γ²)^φ, negative φ included.
    base = next(m.flops for m in members if m.phi == 0)
    factor = 1.2 * 1.1**2 * 1.15**2
    assert drawn.points["ideal"] == [pytest.approx((m.phi, base * factor**m.phi / 1e9)) for m in members]


def test_plot_paths():
    from pathlib import Path

    from scalesearch.plotting import plot_paths

    assert plot_paths(Path("out/fig")) == [Path("out/fig.png"), Path("out/fig.pdf")]
    assert plot_paths(Path("out/fig.v2")) == [Path("out/fig.v2.png"), Path("out/fig.v2.pdf")]
    assert plot_paths(Path("out/fig.pdf")) == [Path("out/fig.pdf")]
