"""The stratified validation split, and the cached data fingerprint."""

import hashlib

import numpy as np
import pytest
import torch

from scalesearch.data import ImageData, load_data
from scalesearch.errors import UserError

CLASS_SIZES = (50, 30, 10)


def _imbalanced_npz(tmp_path):
    """Images that carry their own index in the first two pixels, so each can be traced."""
    labels = np.repeat(np.arange(len(CLASS_SIZES)), CLASS_SIZES)
    n = len(labels)
    images = np.zeros((n, 4, 4, 3), dtype=np.uint8)
    images[:, 0, 0, 0], images[:, 0, 1, 0] = np.arange(n) // 256, np.arange(n) % 256
    np.savez(tmp_path / "d.npz", images=images, labels=labels)
    return tmp_path / "d.npz", n


def _indices(images):
    return (images[:, 0, 0, 0].long() * 256 + images[:, 0, 0, 1].long()).tolist()


def test_split_is_stratified_disjoint_and_complete(tmp_path):
    path, n = _imbalanced_npz(tmp_path)
    d = load_data(path, val_fraction=0.2, seed=0)
    assert torch.bincount(d.val_labels, minlength=3).tolist() == [10, 6, 2]
    assert torch.bincount(d.train_labels, minlength=3).tolist() == [40, 24, 8]
    train, val = _indices(d.train_images), _indices(d.val_images)
    assert not set(train) & set(val) and sorted(train + val) == list(range(n))
    # Each image kept its own label.
    labels = np.repeat(np.arange(3), CLASS_SIZES)
    assert [int(labels[i]) for i in val] == d.val_labels.tolist()


def test_split_is_seeded(tmp_path):
    path, _ = _imbalanced_npz(tmp_path)
    a, b, c = (load_data(path, val_fraction=0.2, seed=s) for s in (1, 1, 2))
    assert _indices(a.val_images) == _indices(b.val_images)
    assert set(_indices(a.val_images)) != set(_indices(c.val_images))
    assert torch.equal(a.train_images, b.train_images) and a.fingerprint == b.fingerprint != c.fingerprint


@pytest.mark.parametrize("size, fraction, expected", [
    (1, 0.5, 0),    # a lone image stays in train
    (2, 0.1, 1),    # every class with two or more images is validated
    (10, 0.9, 9),   # ... and keeps at least one training image
    (30, 0.2, 6),
    (25, 0.1, 2),   # round() as Python rounds: 2.5 -> 2
])
def test_val_count(size, fraction, expected):
    from scalesearch.data.split import val_count

    assert val_count(size, fraction) == expected


def test_too_few_images_for_a_validation_split(tmp_path):
    np.savez(tmp_path / "d.npz", images=np.zeros((2, 4, 4, 3), np.uint8), labels=np.array([0, 1]))
    with pytest.raises(UserError, match="validation split"):
        load_data(tmp_path / "d.npz")


def _tiny_data():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.uint8).view(2, 3, 4, 4)
    y = torch.tensor([0, 1])
    return ImageData("t", x, y, x[:1], y[:1], 2, x, y)


def test_fingerprint_is_hashed_once(monkeypatch):
    calls = []
    real = hashlib.sha256

    def counting_sha256(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(hashlib, "sha256", counting_sha256)
    d = _tiny_data()
    first = d.fingerprint
    for _ in range(3):
        assert d.fingerprint == first and d.describe()["fingerprint"] == first
    assert len(calls) == 1


def test_fingerprint_covers_every_split_in_order():
    """Unchanged definition: results fingerprinted before stay comparable."""
    d = _tiny_data()
    h = hashlib.sha256()
    for t in (d.train_images, d.train_labels, d.val_images, d.val_labels, d.test_images, d.test_labels):
        h.update(t.numpy().tobytes())
    assert d.fingerprint == h.hexdigest()[:16]
