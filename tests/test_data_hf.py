"""Hugging Face datasets as --data: folders written by the datasets library itself (save_to_disk, parquet)."""

import sys

import numpy as np
import pytest
from PIL import Image

from scalesearch.data import load_data
from scalesearch.errors import UserError
from scalesearch_test_helpers import one_line_error

datasets = pytest.importorskip("datasets")


def _rows(n: int, seed: int):
    """Real PNG-encoded images whose colour is their class (red, green, blue), of assorted sizes."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for i in range(n):
        label = i % 3
        side = int(rng.integers(20, 40))
        pixels = np.zeros((side, side + 5, 3), dtype=np.uint8)
        pixels[..., label] = 200
        images.append(Image.fromarray(pixels))
        labels.append(label)
    return images, labels


def _dataset(n: int, seed: int, *, image="image", label="label", class_label=True):
    images, labels = _rows(n, seed)
    features = datasets.Features({image: datasets.Image(),
                                  label: datasets.ClassLabel(names=["red", "green", "blue"]) if class_label
                                  else datasets.Value("int64")})
    return datasets.Dataset.from_dict({image: images, label: labels}, features=features)


def test_a_save_to_disk_folder_is_read_with_its_splits_and_class_names(tmp_path):
    folder = tmp_path / "colours"
    datasets.DatasetDict({"train": _dataset(60, 0), "test": _dataset(12, 1)}).save_to_disk(str(folder))
    data = load_data(str(folder), seed=0, image_size=16)
    assert data.class_names == ["red", "green", "blue"] and data.num_classes == 3
    assert len(data.train_labels) + len(data.val_labels) == 60 and len(data.test_labels) == 12
    assert data.train_images.shape[1:] == (3, 16, 16)
    colour = data.train_images.float().mean(dim=(2, 3)).argmax(dim=1)  # the decoded pixels carry the class
    assert colour.tolist() == data.train_labels.tolist()


def test_parquet_files_name_their_splits_and_other_column_names_are_given(tmp_path):
    folder = tmp_path / "pq" / "data"
    folder.mkdir(parents=True)
    _dataset(30, 0, image="picture_file", label="kind", class_label=False).to_parquet(
        str(folder / "train-00000-of-00001.parquet"))
    _dataset(9, 1, image="picture_file", label="kind", class_label=False).to_parquet(
        str(folder / "test-00000-of-00001.parquet"))
    with pytest.raises(UserError, match="no label column .* --label-column"):
        load_data(str(tmp_path / "pq"), seed=0, image_size=16)
    with pytest.raises(UserError, match="--image-column 'photo' is not a column"):
        load_data(str(tmp_path / "pq"), seed=0, image_size=16, image_column="photo", label_column="kind")
    data = load_data(str(tmp_path / "pq"), seed=0, image_size=16, image_column="picture_file", label_column="kind")
    assert data.num_classes == 3 and len(data.test_labels) == 9


def test_a_parquet_folder_without_a_label_column_is_one_line_before_any_work(cli, tmp_path):
    folder = tmp_path / "nolabel"
    folder.mkdir()
    images, _ = _rows(12, 0)
    datasets.Dataset.from_dict({"image": images}, features=datasets.Features({"image": datasets.Image()})) \
        .to_parquet(str(folder / "train.parquet"))
    code, _, err = cli("grid", "--budget", "2x", "--data", folder, "--out", tmp_path / "run")
    assert code == 2 and "no label column" in one_line_error(err) and "--label-column" in err
    assert not (tmp_path / "run" / "study.db").exists()


def test_without_the_extra_a_dataset_folder_says_which_to_install(tmp_path, monkeypatch):
    folder = tmp_path / "colours"
    _dataset(12, 0).save_to_disk(str(folder))
    monkeypatch.setitem(sys.modules, "datasets", None)  # as on a machine without the hf extra
    with pytest.raises(UserError, match=r"scalesearch\[hf\]"):
        load_data(str(folder), seed=0, image_size=16)


def test_a_network_trains_on_a_dataset_folder(cli, tmp_path):
    import json

    folder = tmp_path / "colours"
    datasets.DatasetDict({"train": _dataset(90, 0), "test": _dataset(15, 1)}).save_to_disk(str(folder))
    code, out, err = cli("train", "--data", folder, "--epochs", "2", "--device", "cpu", "--json",
                         "--train-images", "45")
    assert code == 0, err
    result = json.loads(out)
    assert result["status"] == "ok" and result["num_classes"] == 3 and result["train_images"] == 45
    assert result["accuracy"] is not None and result["test_accuracy"] is not None
