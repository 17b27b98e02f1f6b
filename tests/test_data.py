"""Loaders against files written here in each real format; the embedded data's properties."""

import os
import pickle

import numpy as np
import pytest
import torch

from scalesearch.data import augment_batch, load_data, make_synthetic, resize_on_device
from scalesearch.errors import UserError


def test_synthetic_is_deterministic_and_balanced():
    a = load_data("synthetic", seed=3, image_size=32, synthetic_sizes=(600, 120, 60))
    b = load_data("synthetic", seed=3, image_size=32, synthetic_sizes=(600, 120, 60))
    c = load_data("synthetic", seed=4, image_size=32, synthetic_sizes=(600, 120, 60))
    assert a.fingerprint == b.fingerprint != c.fingerprint
    assert a.train_images.dtype == torch.uint8 and a.train_images.shape == (600, 3, 32, 32)
    assert a.num_classes == 6 and len(a.class_names) == 6
    counts = torch.bincount(a.train_labels, minlength=6)
    assert counts.min() > 600 / 6 * 0.6
    assert a.test_images is not None and len(a.test_labels) == 60
    # Splits come from different generator streams: no image appears in both.
    assert not any(torch.equal(a.val_images[0], x) for x in a.train_images)
    # The embedded data has its own drawing size (headroom for its finest gratings); files keep image_size.
    drawn = load_data("synthetic", seed=3, image_size=32, synthetic_image_size=40, synthetic_sizes=(60, 12, 6))
    assert drawn.train_images.shape == (60, 3, 40, 40)


def _gray(imgs):
    return imgs.float().mean(1)


def _fine_orientation_read(imgs):
    """Guess each image's grating orientation from second differences (medians ignore the coarse bands' few
    sharp edges): True where the vertical ones dominate, i.e. the grating is horizontal."""
    f = _gray(imgs)
    d_y = (f[:, 2:, :] - 2 * f[:, 1:-1, :] + f[:, :-2, :]).abs().flatten(1).median(1).values
    d_x = (f[:, :, 2:] - 2 * f[:, :, 1:-1] + f[:, :, :-2]).abs().flatten(1).median(1).values
    return d_y > d_x


def test_synthetic_fine_grating_fades_gradually_below_the_candidates_input_sizes():
    """The resolution cue: a plain detector reads the fine grating from more images at each larger input
    size from the proxy's 42 px up into the 2x grid's range, not all of them at once above the proxy."""
    from scalesearch.data import SYNTHETIC_CLASSES
    from scalesearch.proxy import CPU_PROXY

    x, y = make_synthetic(600, CPU_PROXY.synthetic_image_size, seed=0)
    horizontal = torch.tensor([SYNTHETIC_CLASSES[i].startswith("fine-h") for i in y.tolist()])
    read = {r: (_fine_orientation_read(resize_on_device(x, r, torch.device("cpu"))) == horizontal).float().mean()
            .item() for r in (42, 49, 56, 62)}
    full = (_fine_orientation_read(x) == horizontal).float().mean().item()
    assert full > 0.9  # as drawn, the grating is there to read
    assert read[42] < read[49] < read[56] <= read[62], read
    assert read[56] - read[42] > 0.1, read


def test_synthetic_cues_follow_the_proxys_base_resolution_on_every_preset():
    """The GPU preset's φ = 0 (72 px) must find the grating as hard to read as the CPU preset's (42 px) does,
    and easier at the same relative input sizes up the grid: before, the data followed the stored size and
    every cue was plain at 72 px (all candidates scored 1.000 on a GPU)."""
    from scalesearch.data import SYNTHETIC_CLASSES
    from scalesearch.proxy import CPU_PROXY, GPU_PROXY

    reads = {}
    for preset in (CPU_PROXY, GPU_PROXY):
        x, y = make_synthetic(600, preset.synthetic_image_size, seed=0,
                              base_resolution=preset.synthetic_base_resolution)
        horizontal = torch.tensor([SYNTHETIC_CLASSES[i].startswith("fine-h") for i in y.tolist()])
        reads[preset.name] = [
            (_fine_orientation_read(resize_on_device(x, round(preset.resolution * f), torch.device("cpu")))
             == horizontal).float().mean().item() for f in (1.0, 1.17, 1.33, 1.48)]
    cpu, gpu = reads["cpu"], reads["gpu"]
    assert gpu[0] < 0.9 and gpu[0] < gpu[2], reads  # not plain at the base, plainer up the grid
    assert all(abs(a - b) < 0.06 for a, b in zip(cpu, gpu)), reads
    # The data drawn for a 72 px base at the old stored size would be read almost everywhere at 72 px.
    x, y = make_synthetic(600, 112, seed=0)
    horizontal = torch.tensor([SYNTHETIC_CLASSES[i].startswith("fine-h") for i in y.tolist()])
    old = (_fine_orientation_read(resize_on_device(x, 72, torch.device("cpu"))) == horizontal).float().mean().item()
    assert old > gpu[0] + 0.05, (old, reads)


def test_synthetic_labels_are_carried_by_both_cues():
    """Each class name says what is drawn: the fine grating's orientation and the coarse pattern."""
    from scalesearch.data import SYNTHETIC_CLASSES

    x, y = make_synthetic(600, 80, seed=1)
    names = [SYNTHETIC_CLASSES[i] for i in y.tolist()]
    # Fine orientation: a horizontal grating varies along y, so its vertical second differences dominate.
    fine_h = torch.tensor([n.startswith("fine-h") for n in names])
    assert (_fine_orientation_read(x) == fine_h).float().mean() > 0.9
    # Coarse pattern: after blurring away the grating, row means vary for horizontal waves, column means
    # for vertical ones, and neither much for the checker.
    blur = resize_on_device(x, 8, torch.device("cpu")).float().mean(1)
    rows, cols = blur.mean(2).std(1), blur.mean(1).std(1)
    for kind, test in (("coarse-h", rows > 1.5 * cols), ("coarse-v", cols > 1.5 * rows)):
        mine = torch.tensor([n.endswith(kind) for n in names])
        assert test[mine].float().mean() > 0.7 > test[~mine].float().mean()


def _write_npz(path, n=60, size=16, classes=3, test=False, layout="nhwc"):
    rng = np.random.default_rng(0)
    shape = (n, size, size, 3) if layout == "nhwc" else (n, 3, size, size)
    arrays = {"images": rng.integers(0, 256, shape, dtype=np.uint8), "labels": rng.integers(0, classes, n)}
    if test:
        arrays["test_images"] = rng.integers(0, 256, (10,) + shape[1:], dtype=np.uint8)
        arrays["test_labels"] = rng.integers(0, classes, 10)
    np.savez(path, **arrays)
    return arrays


@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
def test_npz(tmp_path, layout):
    arrays = _write_npz(tmp_path / "d.npz", test=True, layout=layout)
    d = load_data(tmp_path / "d.npz", val_fraction=0.2, seed=1)
    assert len(d.train_labels) == 48 and len(d.val_labels) == 12
    assert d.train_images.shape[1:] == (3, 16, 16)
    assert d.num_classes == int(arrays["labels"].max()) + 1
    assert len(d.test_labels) == 10
    # Every image is one of the file's images, labels kept alongside.
    src = torch.from_numpy(arrays["images"] if layout == "nchw" else arrays["images"].transpose(0, 3, 1, 2))
    i = 0
    match = [j for j in range(60) if torch.equal(src[j], d.train_images[i])]
    assert match and int(arrays["labels"][match[0]]) == int(d.train_labels[i])


def test_image_folder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls, suffix in (("cat", ".png"), ("dog", ".jpg")):
        (tmp_path / "root" / cls).mkdir(parents=True)
        for i in range(6):
            arr = rng.integers(0, 256, (20 + i, 30, 3), dtype=np.uint8)  # non-square, varied sizes
            Image.fromarray(arr).save(tmp_path / "root" / cls / f"{i}{suffix}")
    (tmp_path / "root" / "cat" / "notes.txt").write_text("ignored")
    d = load_data(tmp_path / "root", image_size=24, val_fraction=0.25)
    assert d.class_names == ["cat", "dog"]
    assert d.num_classes == 2
    assert len(d.train_labels) + len(d.val_labels) == 12
    assert d.train_images.shape[1:] == (3, 24, 24)


def _cifar_records(n, label_bytes, rng):
    labels = rng.integers(0, 10, (n, label_bytes), dtype=np.uint8)
    pixels = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    return np.concatenate([labels, pixels], 1), labels[:, -1], pixels


def test_cifar10_binary(tmp_path):
    rng = np.random.default_rng(0)
    firsts = []
    for i in range(1, 3):
        rec, labels, pixels = _cifar_records(20, 1, rng)
        rec.tofile(tmp_path / f"data_batch_{i}.bin")
        firsts.append((labels, pixels))
    _cifar_records(7, 1, rng)[0].tofile(tmp_path / "test_batch.bin")
    d = load_data(tmp_path, val_fraction=0.1)
    assert d.name == "cifar10" and len(d.train_labels) + len(d.val_labels) == 40
    assert len(d.test_labels) == 7 and d.train_images.shape[1:] == (3, 32, 32)
    # Pixel layout: the record's 3072 bytes are R, G, B planes of 32x32.
    labels, pixels = firsts[0]
    target = torch.from_numpy(pixels[0].reshape(3, 32, 32))
    all_x = torch.cat([d.train_images, d.val_images])
    all_y = torch.cat([d.train_labels, d.val_labels])
    hit = [j for j in range(40) if torch.equal(all_x[j], target)]
    assert hit and int(all_y[hit[0]]) == int(labels[0])


def test_cifar100_binary_uses_fine_label(tmp_path):
    rng = np.random.default_rng(1)
    rec, fine, _ = _cifar_records(30, 2, rng)
    rec.tofile(tmp_path / "train.bin")
    d = load_data(tmp_path)
    assert d.name == "cifar100"
    assert sorted(torch.cat([d.train_labels, d.val_labels]).tolist()) == sorted(fine.tolist())


def test_cifar_python_version(tmp_path):
    rng = np.random.default_rng(2)
    for name in ("data_batch_1", "test_batch"):
        batch = {b"data": rng.integers(0, 256, (15, 3072), dtype=np.uint8), b"labels": list(rng.integers(0, 10, 15))}
        batch[b"labels"] = [int(v) for v in batch[b"labels"]]
        with open(tmp_path / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
    d = load_data(tmp_path)
    assert d.name == "cifar10" and len(d.test_labels) == 15


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo pwned > /tmp/scalesearch-pwned",))


def test_cifar_pickle_carrying_code_is_refused(tmp_path):
    with open(tmp_path / "data_batch_1", "wb") as f:
        pickle.dump({b"data": _Exploit(), b"labels": [0]}, f)
    if os.path.exists("/tmp/scalesearch-pwned"):
        os.unlink("/tmp/scalesearch-pwned")
    with pytest.raises(UserError, match="refusing to unpickle"):
        load_data(tmp_path)
    assert not os.path.exists("/tmp/scalesearch-pwned")


def test_bad_data_sources(tmp_path):
    with pytest.raises(UserError, match="no such file"):
        load_data(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no CIFAR files"):
        load_data(tmp_path / "empty")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(UserError, match=".npz"):
        load_data(tmp_path / "x.txt")
    np.savez(tmp_path / "bad.npz", foo=np.zeros(3))
    with pytest.raises(UserError, match="images"):
        load_data(tmp_path / "bad.npz")
    (tmp_path / "truncated").mkdir()
    np.zeros(100, dtype=np.uint8).tofile(tmp_path / "truncated" / "data_batch_1.bin")
    with pytest.raises(UserError, match="CIFAR records"):
        load_data(tmp_path / "truncated")


def _cifar_python_batch(path, n=15, data_bytes=3072, n_labels=None):
    rng = np.random.default_rng(3)
    batch = {b"data": rng.integers(0, 256, (n, data_bytes), dtype=np.uint8),
             b"labels": [int(v) for v in rng.integers(0, 10, n if n_labels is None else n_labels)]}
    with open(path, "wb") as f:
        pickle.dump(batch, f, protocol=2)


def _assert_one_line_naming(exc, path):
    assert str(path) in str(exc.value) and "\n" not in str(exc.value), str(exc.value)


def test_truncated_cifar_test_binary(tmp_path):
    rng = np.random.default_rng(0)
    _cifar_records(20, 1, rng)[0].tofile(tmp_path / "data_batch_1.bin")
    rec = _cifar_records(5, 1, rng)[0].tobytes()
    (tmp_path / "test_batch.bin").write_bytes(rec[: len(rec) // 2])
    with pytest.raises(UserError, match="CIFAR records") as exc:
        load_data(tmp_path)
    _assert_one_line_naming(exc, tmp_path / "test_batch.bin")


def test_truncated_cifar_python_batch(tmp_path):
    _cifar_python_batch(tmp_path / "data_batch_1")
    raw = (tmp_path / "data_batch_1").read_bytes()
    (tmp_path / "data_batch_1").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(UserError, match="cannot read as a CIFAR python batch") as exc:
        load_data(tmp_path)
    _assert_one_line_naming(exc, tmp_path / "data_batch_1")


@pytest.mark.parametrize("shape", [dict(data_bytes=3000), dict(n_labels=14)])
def test_cifar_python_batch_with_short_data(tmp_path, shape):
    _cifar_python_batch(tmp_path / "data_batch_1", **shape)
    with pytest.raises(UserError, match="truncated") as exc:
        load_data(tmp_path)
    _assert_one_line_naming(exc, tmp_path / "data_batch_1")


def test_cifar10_label_out_of_range(tmp_path):
    rec, _, _ = _cifar_records(20, 1, np.random.default_rng(0))
    rec[0, 0] = 10
    rec.tofile(tmp_path / "data_batch_1.bin")
    with pytest.raises(UserError, match="label is 10, but there are 10 classes"):
        load_data(tmp_path)


def test_augment_batch_crops_and_flips_within_bounds():
    torch.manual_seed(0)
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.uint8).view(2, 3, 8, 8)
    out = augment_batch(x, pad=2)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert set(out.unique().tolist()) <= set(x.unique().tolist())
    assert torch.equal(augment_batch(x, 0).sort(3).values, x.sort(3).values)  # flip only permutes columns
