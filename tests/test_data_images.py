"""Image files and ImageFolder trees, against small real files written here with Pillow."""

import io

import numpy as np
import pytest
import torch
from PIL import Image, features

from scalesearch.data import load_data
from scalesearch.errors import UserError

GREY = (90, 90, 90)


def _grey(size=8):
    return Image.new("RGB", (size, size), GREY)


def _decoded(tmp_path, image, suffix, size=8, **save_args):
    """How load_data decodes `image` saved as `suffix`: its [3, size, size] tensor.

    Class 'a' holds the image twice, class 'b' two grey fillers: one of each goes to validation.
    """
    root = tmp_path / "root"
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
    for i in range(2):
        image.save(root / "a" / f"{i}{suffix}", **save_args)
        _grey().save(root / "b" / f"{i}.png")
    d = load_data(root, image_size=size, val_fraction=0.5)
    x = torch.cat([d.train_images, d.val_images])[torch.cat([d.train_labels, d.val_labels]) == 0]
    assert len(x) == 2 and torch.equal(x[0], x[1])
    return x[0]


def _halves(mode, left, right, size=8):
    """A `mode` image whose left half is `left` and right half `right`."""
    im = Image.new(mode, (size, size), left)
    im.paste(right, (size // 2, 0, size, size))
    return im


def _rgb_at(x, row, col):
    return tuple(x[:, row, col].tolist())


# ---------------------------------------------------------------- decoding


def test_grayscale_becomes_grey_rgb(tmp_path):
    x = _decoded(tmp_path, Image.new("L", (8, 8), 100), ".png")
    assert (x == 100).all()


def test_transparency_is_composited_over_white(tmp_path):
    # Fully transparent red must not show as red; half-transparent black over white is mid grey.
    x = _decoded(tmp_path, _halves("RGBA", (255, 0, 0, 0), (0, 0, 0, 128)), ".png")
    assert _rgb_at(x, 0, 0) == (255, 255, 255)
    assert all(abs(v - 127) <= 1 for v in _rgb_at(x, 0, 7))


def test_grayscale_with_alpha_is_composited(tmp_path):
    x = _decoded(tmp_path, _halves("LA", (0, 0), (0, 255)), ".png")
    assert _rgb_at(x, 0, 0) == (255, 255, 255) and _rgb_at(x, 0, 7) == (0, 0, 0)


def _palette_image():
    im = _halves("P", 0, 1)
    im.putpalette([255, 0, 0, 0, 0, 255] + [0, 0, 0] * 254)  # 0: red, 1: blue
    return im


@pytest.mark.parametrize("suffix", [".png", ".gif"])
def test_palette_with_transparency(tmp_path, suffix):
    x = _decoded(tmp_path, _palette_image(), suffix, transparency=0)  # red is the transparent entry
    assert _rgb_at(x, 0, 0) == (255, 255, 255) and _rgb_at(x, 0, 7) == (0, 0, 255)


def test_palette_without_transparency(tmp_path):
    x = _decoded(tmp_path, _palette_image(), ".png")
    assert _rgb_at(x, 0, 0) == (255, 0, 0) and _rgb_at(x, 0, 7) == (0, 0, 255)


def test_16_bit_png_is_scaled_not_clipped(tmp_path):
    wide = np.full((8, 8), 65535, dtype=np.uint16)
    wide[:, 4:] = 32768
    wide[0, :] = 1000
    im = Image.fromarray(wide)
    assert im.mode == "I;16"
    x = _decoded(tmp_path, im, ".png")
    assert _rgb_at(x, 1, 0) == (255,) * 3 and _rgb_at(x, 1, 7) == (128,) * 3 and _rgb_at(x, 0, 0) == (4,) * 3


def test_32_bit_integer_tiff_is_read_as_16_bit(tmp_path):
    wide = np.full((8, 8), 65535, dtype=np.int32)
    wide[:, 4:] = 32768
    im = Image.fromarray(wide)
    assert im.mode == "I"
    x = _decoded(tmp_path, im, ".tif")
    assert _rgb_at(x, 0, 0) == (255,) * 3 and _rgb_at(x, 0, 7) == (128,) * 3


def test_exif_orientation_is_applied(tmp_path):
    # Stored landscape 32x16, red top half, blue bottom. Orientation 6 (rotate 90 degrees clockwise
    # to display) makes it portrait with red on the right; the centre crop keeps red right, blue left.
    im = Image.new("RGB", (32, 16), (0, 0, 255))
    im.paste((255, 0, 0), (0, 0, 32, 8))
    exif = Image.Exif()
    exif[0x0112] = 6
    x = _decoded(tmp_path, im, ".jpg", size=16, exif=exif.tobytes(), quality=95)
    left, right = _rgb_at(x, 8, 1), _rgb_at(x, 8, 14)
    assert left[2] > 200 and left[0] < 60, left  # blue
    assert right[0] > 200 and right[2] < 60, right  # red


def test_large_jpeg_decoded_at_reduced_scale_matches_full_decode(tmp_path):
    rng = np.random.default_rng(0)
    blocks = rng.integers(0, 256, (4, 8, 3), dtype=np.uint8).repeat(40, 0).repeat(40, 1)  # 160x320
    x = _decoded(tmp_path, Image.fromarray(blocks), ".jpg", size=16, quality=95)
    with Image.open(tmp_path / "root" / "a" / "0.jpg") as im:  # full decode, same crop and resize
        full = im.convert("RGB").crop((80, 0, 240, 160)).resize((16, 16), Image.BILINEAR)
    reference = torch.from_numpy(np.asarray(full).transpose(2, 0, 1).copy())
    assert (x.float() - reference.float()).abs().mean() < 8  # a wrong crop or scale differs by ~80


def test_common_suffixes_any_case(tmp_path):
    formats = {".JPG": "JPEG", ".jpeg": "JPEG", ".PNG": "PNG", ".bmp": "BMP", ".Gif": "GIF", ".tif": "TIFF",
               ".TIFF": "TIFF"}
    if features.check("webp"):
        formats[".webp"] = "WEBP"
    for cls in ("a", "b"):
        (tmp_path / cls).mkdir()
        for i, (suffix, fmt) in enumerate(formats.items()):
            _grey().save(tmp_path / cls / f"{i}{suffix}", format=fmt)
    d = load_data(tmp_path, image_size=8)
    assert len(d.train_labels) + len(d.val_labels) == 2 * len(formats)


# ---------------------------------------------------------------- unreadable files


def _good_folder(root, per_class=3):
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            _grey().save(root / cls / f"{i}.png")
    return root


def _real_bytes(fmt):
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, fmt)
    return buf.getvalue()


BAD_FILES = {
    "corrupt.jpg": lambda: np.random.default_rng(1).integers(0, 256, 500, dtype=np.uint8).tobytes(),
    "truncated.jpg": lambda: _real_bytes("JPEG")[: len(_real_bytes("JPEG")) // 2],
    "truncated.png": lambda: _real_bytes("PNG")[: len(_real_bytes("PNG")) // 2],
}


def _one_line_error(excinfo, *needles):
    msg = str(excinfo.value)
    assert "\n" not in msg
    for needle in needles:
        assert needle in msg, msg
    return msg


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_unreadable_file_is_named(tmp_path, name):
    root = _good_folder(tmp_path / "root")
    (root / "a" / name).write_bytes(BAD_FILES[name]())
    with pytest.raises(UserError) as exc:
        load_data(root, image_size=8)
    _one_line_error(exc, str(root / "a" / name), "--skip-bad-images")


@pytest.mark.parametrize("side", [12, 16])  # 144 px: PIL only warns; 256 px: over twice the limit, PIL raises
def test_decompression_bomb_is_refused(tmp_path, monkeypatch, side):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # the 8x8 good images stay under it
    root = _good_folder(tmp_path / "root")
    Image.new("RGB", (side, side)).save(root / "b" / "huge.png")
    with pytest.raises(UserError) as exc:
        load_data(root, image_size=8)
    _one_line_error(exc, str(root / "b" / "huge.png"), "too many pixels")


def test_skip_bad_images_lists_them(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    root = _good_folder(tmp_path / "root")
    for name, make in BAD_FILES.items():
        (root / "a" / name).write_bytes(make())
    Image.new("RGB", (12, 12)).save(root / "b" / "huge.png")
    d = load_data(root, image_size=8, skip_bad_images=True)
    assert sorted(d.skipped_files) == sorted([str(root / "a" / n) for n in BAD_FILES] + [str(root / "b" / "huge.png")])
    assert d.describe()["skipped_files"] == 4
    assert len(d.train_labels) + len(d.val_labels) == 6
    assert load_data(_good_folder(tmp_path / "clean"), image_size=8).describe()["skipped_files"] == 0


def test_skip_bad_images_still_needs_a_readable_image_per_class(tmp_path):
    root = _good_folder(tmp_path / "root")
    (root / "c").mkdir()
    (root / "c" / "x.jpg").write_bytes(b"not an image")
    with pytest.raises(UserError) as exc:
        load_data(root, image_size=8, skip_bad_images=True)
    _one_line_error(exc, str(root / "c"), "could be read")


# ---------------------------------------------------------------- folder layout


def test_flat_train_and_test_folders_are_not_classes(tmp_path):
    for split in ("train", "test"):
        (tmp_path / split).mkdir()
        for i in range(3):
            _grey().save(tmp_path / split / f"{i}.jpg")
    with pytest.raises(UserError) as exc:
        load_data(tmp_path, image_size=8)
    _one_line_error(exc, str(tmp_path / "train"), "class sub-folders")


def test_flat_root_needs_class_folders(tmp_path):
    for i in range(3):
        _grey().save(tmp_path / f"{i}.jpg")
    with pytest.raises(UserError, match="class sub-folders"):
        load_data(tmp_path, image_size=8)


def test_images_beside_class_folders_are_refused(tmp_path):
    root = _good_folder(tmp_path / "root")
    _grey().save(root / "stray.jpg")
    with pytest.raises(UserError) as exc:
        load_data(root, image_size=8)
    _one_line_error(exc, str(root), "stray.jpg", "outside the class folders")


def test_empty_class_folder_is_named(tmp_path):
    root = _good_folder(tmp_path / "root")
    (root / "c").mkdir()
    (root / "c" / "notes.txt").write_text("no images here")
    with pytest.raises(UserError) as exc:
        load_data(root, image_size=8)
    _one_line_error(exc, str(root / "c"), "no images")


def test_single_class_is_refused(tmp_path):
    (tmp_path / "only").mkdir()
    for i in range(3):
        _grey().save(tmp_path / "only" / f"{i}.png")
    with pytest.raises(UserError) as exc:
        load_data(tmp_path, image_size=8)
    _one_line_error(exc, "only", "at least two")


def test_train_test_tree(tmp_path):
    _good_folder(tmp_path / "train")
    (tmp_path / "test" / "a").mkdir(parents=True)
    (tmp_path / "test" / "b").mkdir(parents=True)
    Image.new("RGB", (8, 8), (0, 0, 0)).save(tmp_path / "test" / "a" / "0.png")
    Image.new("RGB", (8, 8), (255, 255, 255)).save(tmp_path / "test" / "b" / "0.png")
    d = load_data(tmp_path, image_size=8)
    assert d.class_names == ["a", "b"] and len(d.train_labels) + len(d.val_labels) == 6
    assert d.test_labels.tolist() == [0, 1] and d.test_images[1].min() == 255


def test_test_classes_must_match_train(tmp_path):
    _good_folder(tmp_path / "train")
    _good_folder(tmp_path / "test")
    (tmp_path / "test" / "b").rename(tmp_path / "test" / "c")
    with pytest.raises(UserError) as exc:
        load_data(tmp_path, image_size=8)
    _one_line_error(exc, str(tmp_path / "test"), "differ", "missing: b", "not in train/: c")


def test_val_folder_beside_train_is_not_ignored_silently(tmp_path):
    _good_folder(tmp_path / "train")
    _good_folder(tmp_path / "val")
    with pytest.raises(UserError) as exc:
        load_data(tmp_path, image_size=8)
    _one_line_error(exc, str(tmp_path / "val"), "unexpected folder")


def test_test_folder_needs_train(tmp_path):
    _good_folder(tmp_path / "test")
    with pytest.raises(UserError, match="needs a train/ folder"):
        load_data(tmp_path, image_size=8)


def test_a_class_may_be_called_train(tmp_path):
    for cls in ("bus", "car", "train"):  # a vehicle data set: train/ holds images, not class folders
        (tmp_path / cls).mkdir()
        for i in range(2):
            _grey().save(tmp_path / cls / f"{i}.png")
    assert load_data(tmp_path, image_size=8).class_names == ["bus", "car", "train"]


def test_hidden_files_and_folders_are_ignored(tmp_path):
    root = _good_folder(tmp_path / "root")
    (root / ".ipynb_checkpoints").mkdir()
    _grey().save(root / ".ipynb_checkpoints" / "x.png")
    (root / "a" / ".ipynb_checkpoints").mkdir()
    _grey().save(root / "a" / ".ipynb_checkpoints" / "0-checkpoint.png")
    (root / "a" / "._0.png").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")  # not an image
    d = load_data(root, image_size=8)
    assert d.class_names == ["a", "b"] and len(d.train_labels) + len(d.val_labels) == 6
