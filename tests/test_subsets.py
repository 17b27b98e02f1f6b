"""--train-images / --val-images: class-stratified subsets drawn from the run's seed, part of its identity."""

import json

import numpy as np
import pytest
import torch

from scalesearch.data import load_data
from scalesearch.data.split import stratified_subset
from scalesearch_test_helpers import one_line_error

SIZES = (50, 30, 20)


def _labels():
    return torch.tensor(np.repeat(np.arange(len(SIZES)), SIZES))


@pytest.mark.parametrize("count, per_class", [(10, [5, 3, 2]), (3, [1, 1, 1]), (2, [1, 1, 0]), (99, [49, 30, 20])])
def test_a_subset_keeps_each_class_in_proportion_and_every_class_where_it_can(count, per_class):
    labels = _labels()
    chosen = stratified_subset(labels, count, seed=0)
    assert len(chosen) == count == len(set(chosen.tolist()))
    assert torch.bincount(labels[chosen], minlength=3).tolist() == per_class


def test_a_subset_is_drawn_from_the_seed_alone():
    labels = _labels()
    assert stratified_subset(labels, 10, seed=4).tolist() == stratified_subset(labels, 10, seed=4).tolist()
    assert stratified_subset(labels, 10, seed=4).tolist() != stratified_subset(labels, 10, seed=5).tolist()
    assert sorted(stratified_subset(labels, 500, seed=4).tolist()) == list(range(len(labels)))  # more than there is


def test_subsets_cut_train_and_val_and_keep_the_test_split(tiny_npz):
    full = load_data(str(tiny_npz), seed=3, image_size=32)
    cut = full.subsets(train=40, val=7, seed=3)
    assert (len(cut.train_labels), len(cut.val_labels)) == (40, 7)
    assert cut.test_labels is full.test_labels or torch.equal(cut.test_labels, full.test_labels)
    assert cut.subset == {"train": {"asked": 40, "used": 40, "of": len(full.train_labels)},
                          "val": {"asked": 7, "used": 7, "of": len(full.val_labels)}}
    assert cut.fingerprint != full.fingerprint  # a result on a subset never passes for one on the whole set
    assert full.subsets(train=None, val=None, seed=3) is full


def _grid(cli, data, out, *extra):
    return cli("grid", "--budget", "2x", "--data", data, "--out", out, "--epochs", "1", "--step", "0.2",
               "--seeds", "1", "--jobs", "1", "--tolerance", "0.3", *extra)


KNOBS = ["--proxy-width", "0.3", "--proxy-depth", "0.4", "--proxy-resolution", "36", "--batch-size", "32",
         "--lr", "0.02"]


def test_a_grid_on_a_subset_with_its_own_proxy_records_both_and_refuses_to_resume_with_others(cli, tmp_path,
                                                                                               tiny_npz):
    from scalesearch.proxy import CPU_PROXY

    out = tmp_path / "run"
    subset = ["--train-images", "60", "--val-images", "9999"]
    code, _, err = _grid(cli, tiny_npz, out, *subset, *KNOBS, "--device", "cpu")
    assert code == 0, err
    assert "60 of " in err and "(all of them: --val-images asked for 9,999)" in err
    provenance = json.loads((out / "best.json").read_text())["provenance"]
    data, proxy = provenance["data"], provenance["proxy"]
    assert data["train"] == 60 and data["subset"]["train"]["used"] == 60
    assert data["subset"]["val"]["used"] == data["subset"]["val"]["of"] == data["val"]
    assert (proxy["width_mult"], proxy["depth_mult"], proxy["resolution"]) == (0.3, 0.4, 36)
    assert (proxy["train"]["batch_size"], proxy["train"]["lr"]) == (32, 0.02)
    assert proxy["train"]["epochs"] == 1 and proxy["train"]["optimizer"] == CPU_PROXY.train.optimizer
    code, _, err = _grid(cli, tiny_npz, out, "--train-images", "50", "--val-images", "9999", *KNOBS, "--device", "cpu")
    assert code == 2 and "cannot resume" in one_line_error(err) and "train_images" in err
    code, _, err = _grid(cli, tiny_npz, out, *subset, *KNOBS[:-1], "0.03", "--device", "cpu")
    assert code == 2 and "cannot resume" in one_line_error(err) and "lr 0.03" in err


@pytest.mark.parametrize("args", [["--train-images", "0"], ["--val-images", "-3"], ["--train-images", "lots"]])
def test_a_bad_image_count_is_one_line_before_any_work(cli, tmp_path, tiny_npz, args):
    code, _, err = _grid(cli, tiny_npz, tmp_path / "run", *args)
    assert code == 2 and args[0] in one_line_error(err)
    assert not (tmp_path / "run" / "study.db").exists()


def test_the_api_refuses_a_bad_count_in_one_line(tmp_path):
    import scalesearch

    with pytest.raises(scalesearch.UserError, match="--train-images must be a whole number"):
        scalesearch.grid(train_images=0, out=tmp_path / "run", jobs=1)
