"""The proxy's knobs: --proxy-width/--proxy-depth/--proxy-resolution/--batch-size/--lr, part of the run's identity
(end to end with the subsets, in test_subsets.py: one small grid serves both)."""

import pytest

from scalesearch.config import SearchConfig
from scalesearch.proxy import CPU_PROXY
from scalesearch_test_helpers import one_line_error


def _grid(cli, data, out, *extra):
    return cli("grid", "--budget", "2x", "--data", data, "--out", out, "--epochs", "1", "--step", "0.2",
               "--seeds", "1", "--jobs", "1", "--tolerance", "0.3", "--device", "cpu", *extra)


def test_a_larger_proxy_resolution_stores_the_data_larger_in_proportion():
    cfg = SearchConfig(mode="grid", proxy_resolution=84)
    proxy = CPU_PROXY.with_overrides(**cfg.proxy_options())
    assert proxy.resolution == 84 and proxy.image_size == 128  # the preset keeps 64 px for 42: 1.52x
    assert CPU_PROXY.with_overrides(**SearchConfig(mode="grid").proxy_options()) == CPU_PROXY


@pytest.mark.parametrize("args, needle", [
    (["--proxy-width", "-1"], "--proxy-width"),
    (["--proxy-depth", "0"], "--proxy-depth"),
    (["--proxy-width", "nan"], "--proxy-width"),
    (["--proxy-resolution", "8"], "--proxy-resolution"),
    (["--batch-size", "0"], "--batch-size"),
    (["--lr", "-0.1"], "--lr"),
])
def test_an_impossible_knob_is_one_line_before_any_work(cli, tmp_path, tiny_npz, args, needle):
    code, _, err = _grid(cli, tiny_npz, tmp_path / "run", *args)
    assert code == 2 and needle in one_line_error(err)
    assert not (tmp_path / "run" / "study.db").exists()
