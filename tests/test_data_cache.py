"""The decode cache of image folders: reused while the files are unchanged, rebuilt when one changes."""

import os

import numpy as np
from PIL import Image

from scalesearch.data import load_data


def _tree(root, n_per_class=40):
    rng = np.random.default_rng(0)
    for c in ("cats", "dogs"):
        (root / c).mkdir(parents=True)
        for i in range(n_per_class):  # 80 files: enough to take the threaded decoding path
            Image.fromarray(rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)).save(root / c / f"{i}.bmp")  # BMP: file size depends only on the image size
    return root


def test_a_folder_is_decoded_once_and_decoded_again_when_a_file_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALESEARCH_CACHE", str(tmp_path / "cache"))
    root = _tree(tmp_path / "data")
    first = load_data(root, image_size=16)
    entries = list((tmp_path / "cache" / "decoded").glob("*.npz"))
    assert len(entries) == 1

    # Overwrite one image with other pixels but the same size and modification time: the cache cannot
    # tell, so the second load returning the *old* pixels proves it read the cache, not the file.
    victim = root / "cats" / "0.bmp"
    st = victim.stat()
    Image.fromarray(np.full((20, 24, 3), 7, dtype=np.uint8)).save(victim)
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert victim.stat().st_size == st.st_size
    second = load_data(root, image_size=16)
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in
               ((first.train_images, second.train_images), (first.val_images, second.val_images)))

    # A new modification time is a new key: the file is decoded again and its new pixels appear.
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    third = load_data(root, image_size=16)
    assert len(list((tmp_path / "cache" / "decoded").glob("*.npz"))) == 2
    pooled = np.concatenate([third.train_images.numpy(), third.val_images.numpy()])
    assert any((img == 7).all() for img in pooled)
    assert not any((img == 7).all() for img in np.concatenate([first.train_images.numpy(),
                                                                first.val_images.numpy()]))


def test_threaded_decoding_equals_one_by_one_and_off_means_no_cache(tmp_path, monkeypatch):
    from scalesearch.data.images import read_image

    monkeypatch.setenv("SCALESEARCH_CACHE", "off")
    root = _tree(tmp_path / "data")
    data = load_data(root, image_size=16, val_fraction=0.1, seed=0)
    files = sorted((root / "cats").glob("*.bmp"), key=lambda p: int(p.stem))
    one_by_one = {read_image(f, 16).tobytes() for f in files}
    pooled = np.concatenate([data.train_images.numpy(), data.val_images.numpy()])
    labels = np.concatenate([data.train_labels.numpy(), data.val_labels.numpy()])
    assert {img.tobytes() for img, y in zip(pooled, labels) if y == 0} == one_by_one
    assert not (tmp_path / "cache").exists()
