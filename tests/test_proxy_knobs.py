"""The proxy's knobs: --proxy-width/--proxy-depth/--proxy-resolution/--batch-size/--lr, part of the run's identity."""

import json

import pytest

from scalesearch.config import SearchConfig
from scalesearch.proxy import CPU_PROXY
from scalesearch_test_helpers import one_line_error


def _grid(cli, data, out, *extra):
    return cli("grid", "--budget", "2x", "--data", data, "--out", out, "--epochs", "1", "--step", "0.2",
               "--seeds", "1", "--jobs", "1", "--tolerance", "0.3", "--device", "cpu", *extra)


def test_the_knobs_replace_the_presets_values_and_a_resume_must_repeat_them(cli, tmp_path, tiny_npz):
    out = tmp_path / "run"
    knobs = ["--proxy-width", "0.3", "--proxy-depth", "0.4", "--proxy-resolution", "36", "--batch-size", "32",
             "--lr", "0.02"]
    code, _, err = _grid(cli, tiny_npz, out, *knobs)
    assert code == 0, err
    proxy = json.loads((out / "best.json").read_text())["provenance"]["proxy"]
    assert (proxy["width_mult"], proxy["depth_mult"], proxy["resolution"]) == (0.3, 0.4, 36)
    assert (proxy["train"]["batch_size"], proxy["train"]["lr"]) == (32, 0.02)
    assert proxy["train"]["epochs"] == 1 and proxy["train"]["optimizer"] == CPU_PROXY.train.optimizer
    code, _, err = _grid(cli, tiny_npz, out, *knobs[:-1], "0.03")
    assert code == 2 and "cannot resume" in one_line_error(err) and "lr 0.03" in err


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
