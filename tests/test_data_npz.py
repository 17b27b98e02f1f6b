""".npz files: what is accepted, and one clear line for each way a file can be wrong."""

import numpy as np
import pytest

from scalesearch.data import load_data
from scalesearch.errors import UserError

RNG = np.random.default_rng(0)


def _images(n=12, size=8, channels=3, dtype=np.uint8):
    return RNG.integers(0, 256, (n, size, size, channels)).astype(dtype)


def _labels(n=12, classes=3):
    return np.arange(n) % classes


def _refused(tmp_path, *needles, **arrays):
    """Write `arrays` to an .npz; load_data must refuse it in one line naming the file and `needles`."""
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    with pytest.raises(UserError) as exc:
        load_data(path)
    msg = str(exc.value)
    assert "\n" not in msg and str(path) in msg, msg
    for needle in needles:
        assert needle in msg, msg


def test_x_test_and_y_test_are_read(tmp_path):
    np.savez(tmp_path / "d.npz", x_train=_images(), y_train=_labels(), x_test=_images(6), y_test=_labels(6))
    d = load_data(tmp_path / "d.npz")
    assert len(d.test_labels) == 6 and d.test_images.shape == (6, 3, 8, 8)


def test_grayscale_is_expanded_to_rgb(tmp_path):
    np.savez(tmp_path / "d.npz", images=_images()[..., 0], labels=_labels())
    d = load_data(tmp_path / "d.npz")
    assert d.train_images.shape[1:] == (3, 8, 8)
    assert (d.train_images[:, 0] == d.train_images[:, 2]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.uint16, np.int64])
def test_non_uint8_images_are_refused_not_cast(tmp_path, dtype):
    _refused(tmp_path, "'images'", "uint8", np.dtype(dtype).name, images=_images(dtype=dtype), labels=_labels())


def test_non_square_images(tmp_path):
    _refused(tmp_path, "square", images=_images()[:, :, :6], labels=_labels())


def test_train_length_mismatch(tmp_path):
    _refused(tmp_path, "12 images", "11 labels", images=_images(), labels=_labels(11))


def test_test_length_mismatch(tmp_path):
    _refused(tmp_path, "6 images in 'test_images'", "5 labels in 'test_labels'",
             images=_images(), labels=_labels(), test_images=_images(6), test_labels=_labels(5))


@pytest.mark.parametrize("bad", [np.zeros((12, 1), int), np.linspace(0, 2, 12), np.array(["cat", "dog"] * 6)])
def test_labels_must_be_1d_integers(tmp_path, bad):
    _refused(tmp_path, "'labels'", "1-D array of non-negative integers", images=_images(), labels=bad)
    _refused(tmp_path, "'test_labels'", "1-D array of non-negative integers",
             images=_images(), labels=_labels(), test_images=_images(), test_labels=bad)


def test_object_arrays_are_not_unpickled(tmp_path):
    _refused(tmp_path, "'labels'", images=_images(), labels=np.array([0, "a"] * 6, dtype=object))


@pytest.mark.parametrize("test_images", [_images(6, size=10), _images(6, channels=1)])
def test_test_images_must_match_train(tmp_path, test_images):
    _refused(tmp_path, "test images are", "training images are 3x8x8",
             images=_images(), labels=_labels(), test_images=test_images, test_labels=_labels(6))


def test_test_labels_beyond_classes(tmp_path):
    _refused(tmp_path, "test label is 3", "3 classes",
             images=_images(), labels=_labels(), test_images=_images(6), test_labels=_labels(6, classes=4))


def test_test_half_missing(tmp_path):
    _refused(tmp_path, "'test_images'", "test_labels", images=_images(), labels=_labels(), test_images=_images(6))


@pytest.mark.parametrize("key", ["images", "test_images"])
def test_zero_images(tmp_path, key):
    arrays = {"images": _images(), "labels": _labels(), "test_images": _images(6), "test_labels": _labels(6)}
    arrays[key] = arrays[key][:0]
    arrays[key.replace("images", "labels")] = arrays[key.replace("images", "labels")][:0]
    _refused(tmp_path, f"'{key}'", "no images", **arrays)


def test_labels_must_cover_two_classes(tmp_path):
    _refused(tmp_path, "at least two classes", images=_images(), labels=np.full(12, 3))


def test_not_an_npz(tmp_path):
    path = tmp_path / "d.npz"
    with open(path, "wb") as f:
        np.save(f, _images())  # a bare .npy under an .npz name
    with pytest.raises(UserError, match="not an .npz archive"):
        load_data(path)


@pytest.mark.parametrize("damage", ["random", "truncated"])
def test_corrupt_npz(tmp_path, damage):
    path = tmp_path / "d.npz"
    np.savez_compressed(path, images=_images(), labels=_labels())
    data = path.read_bytes()
    garbage = RNG.integers(0, 256, 400, dtype=np.uint8).tobytes()
    path.write_bytes(garbage if damage == "random" else data[: len(data) // 2])
    with pytest.raises(UserError) as exc:
        load_data(path)
    assert str(path) in str(exc.value) and "\n" not in str(exc.value)
