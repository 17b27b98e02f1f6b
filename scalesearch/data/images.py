"""Image files: decoding one image, and the ImageFolder layout of a directory of them.

Layouts (the class is the sub-folder's name; images may be nested deeper inside a class folder):

    root/<class>/*.jpg            all images are training data (validation is held out of them)
    root/train/<class>/*.jpg      the same, and optionally
    root/test/<class>/*.jpg       test data, with exactly train/'s class folders

Hidden entries (names starting with '.', e.g. .ipynb_checkpoints, macOS ._ files) are ignored.
Images lying outside any class folder are refused rather than ignored: each should have a label.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from .cache import cached_arrays, folder_key
from .checks import one_line

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}  # compared lower-cased

# Transparent pixels are composited over white, the usual page/canvas colour behind cut-outs and
# icons. (convert("RGB") would drop the alpha and expose whatever colour the hidden pixels hold.)
ALPHA_BACKGROUND = (255, 255, 255)

SKIP_HINT = "--skip-bad-images (skip_bad_images=True) leaves unreadable files out"


def read_image(path, size: int, *, name: str | None = None) -> np.ndarray:
    """One image file (a path, or a binary file object such as a data set row's bytes, then called `name` in
    messages) -> uint8 [3, size, size]: upright, RGB, centre-cropped to a square, resized.

    - EXIF orientation is applied (phone photos are often stored sideways);
    - grayscale and palette images become RGB; alpha and palette transparency are composited
      over ALPHA_BACKGROUND (white);
    - 16-bit (and 32-bit integer) grayscale is scaled from 0-65535 to 0-255;
    - images over PIL's Image.MAX_IMAGE_PIXELS are refused as possible decompression bombs.
    Any failure is a UserError naming the file.
    """
    from PIL import Image, ImageOps

    _quiet_bomb_warnings()
    try:
        with Image.open(path) as im:
            # PIL raises above twice MAX_IMAGE_PIXELS but only warns between MAX and twice that, and
            # decodes anyway: refuse both, from the header, before decoding. (Checked here rather than
            # by turning the warning into an error: warning filters are process-wide, and images are
            # decoded on several threads.)
            if Image.MAX_IMAGE_PIXELS and im.width * im.height > Image.MAX_IMAGE_PIXELS:
                raise Image.DecompressionBombError(f"{im.width}x{im.height} pixels, over the limit of "
                                                   f"{Image.MAX_IMAGE_PIXELS}")
            # JPEG only: let the decoder shrink by up to 8x while both sides stay >= size (much
            # faster for large photos, and the resize below would discard the detail anyway).
            im.draft(None, (size, size))
            im.load()  # decode the pixels here: open() reads only the header
            im = _as_rgb(ImageOps.exif_transpose(im))
        # Centre-crop to a square, then resize: the trainer works on square inputs.
        side = min(im.size)
        left, top = (im.width - side) // 2, (im.height - side) // 2
        im = im.crop((left, top, left + side, top + side)).resize((size, size), Image.BILINEAR)
        return np.asarray(im, dtype=np.uint8).transpose(2, 0, 1)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UserError(f"{name or path}: refused, too many pixels to decode safely ({one_line(exc)})") from None
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError, ... for damaged files
        raise UserError(f"{name or path}: cannot read image ({one_line(exc)})") from None


@functools.cache
def _quiet_bomb_warnings() -> None:
    """PIL's warning is redundant with read_image's own refusal; silence that one category only.

    Once per process (cached), and before any decoding thread starts: warnings.filterwarnings edits a
    process-wide list, and two threads editing it at once can fail."""
    from PIL import Image

    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def _as_rgb(im):
    from PIL import Image

    if im.mode == "F":
        raise ValueError("32-bit float pixels have no standard 0-255 scale; save the image as 8 or 16 bits")
    if im.mode == "I" or im.mode.startswith("I;16"):
        # convert("RGB") clips these at 255 instead of scaling them; 16-bit PNGs open as I;16 (older PIL: I).
        wide = np.asarray(im).astype(np.float64)
        im = Image.fromarray(np.clip(np.rint(wide / 257.0), 0, 255).astype(np.uint8))  # 65535 -> 255
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        rgba = im.convert("RGBA")  # also applies a palette's or a colour key's transparency
        background = Image.new("RGBA", im.size, ALPHA_BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im.convert("RGB")


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _is_image(p: Path) -> bool:
    return p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()


def _class_folders(folder: Path) -> list[Path]:
    """The visible sub-folders of `folder`, refusing images that lie directly in it (they have no class)."""
    entries = _visible(folder)
    loose = [p.name for p in entries if _is_image(p)]
    folders = [p for p in entries if p.is_dir()]
    if loose and not folders:
        raise UserError(f"{folder}: images lie directly in this folder (e.g. {loose[0]}); class sub-folders "
                        f"are needed: put each class's images in {folder}/<class name>/")
    if loose:
        raise UserError(f"{folder}: {len(loose)} image(s) lie outside the class folders (e.g. {loose[0]}); "
                        "move them into their class folder or remove them")
    return folders


def _has_folders(folder: Path) -> bool:
    return folder.is_dir() and any(p.is_dir() for p in _visible(folder))


def _image_files(class_folder: Path) -> list[Path]:
    """Images anywhere under a class folder, except in hidden files or folders."""
    return [p for p in sorted(class_folder.rglob("*"))
            if _is_image(p) and not any(part.startswith(".") for part in p.relative_to(class_folder).parts)]


def decode_in_parallel(files: list, size: int, *, names: list[str] | None = None) -> list:
    """Each file's array (a path, or a file object named by `names`), or its UserError, in order. PIL releases
    the GIL while it decodes, so threads use every core (a warning-filter-free read_image makes that safe)."""
    from concurrent.futures import ThreadPoolExecutor

    from ..host import cpu_cores

    def attempt(i: int):
        try:
            return read_image(files[i], size, name=names[i] if names is not None else None)
        except UserError as exc:
            return exc

    _quiet_bomb_warnings()  # here, in this thread, not first inside the pool
    if len(files) < 64:
        return [attempt(i) for i in range(len(files))]
    with ThreadPoolExecutor(max_workers=min(16, cpu_cores())) as pool:
        return list(pool.map(attempt, range(len(files)), chunksize=32))


def _read_split(files_by_class: dict[Path, list[Path]], size: int, skip_bad_images: bool, skipped: list[str]):
    flat = [(label, f) for label, files in enumerate(files_by_class.values()) for f in files]
    for folder, files in files_by_class.items():
        if not files:
            raise UserError(f"{folder}: class folder holds no images ({' '.join(sorted(IMAGE_SUFFIXES))}, any case)")
    decoded = decode_in_parallel([f for _, f in flat], size)
    images, labels, read = [], [], [0] * len(files_by_class)
    for (label, f), result in zip(flat, decoded):
        if isinstance(result, UserError):
            if not skip_bad_images:
                raise UserError(f"{result}; {SKIP_HINT}") from None
            skipped.append(str(f))
            continue
        images.append(result)
        labels.append(label)
        read[label] += 1
    for (folder, files), count in zip(files_by_class.items(), read):
        if count == 0:
            raise UserError(f"{folder}: none of its {len(files)} images could be read")
    return np.stack(images), np.asarray(labels, dtype=np.int64)


def load_image_folder(root: Path, size: int, *, skip_bad_images: bool = False):
    """(class names, train split, test split or None, skipped files), or None if `root` holds no class folders.

    Unreadable images raise UserError, or with skip_bad_images are left out and listed.
    """
    top = _class_folders(root)
    names = {p.name for p in top}
    # train/ (and test/) split the data when they hold class folders or are all there is; otherwise
    # 'train' or 'test' is just a class name (a vehicle data set has trains).
    split_layout = bool(names) and (names <= {"train", "test"} or _has_folders(root / "train"))
    if split_layout:
        if "train" not in names:
            raise UserError(f"{root / 'test'}: a test/ folder needs a train/ folder beside it "
                            "(train/<class>/, test/<class>/)")
        others = sorted(names - {"train", "test"})
        if others:  # e.g. a val/ that would otherwise be silently ignored
            raise UserError(f"{root / others[0]}: unexpected folder next to train/: the layout is train/<class>/ "
                            "and optionally test/<class>/; validation is held out of train/")
        train_classes = _class_folders(root / "train")
        if not train_classes:
            raise UserError(f"{root / 'train'}: no class sub-folders; put each class's images in train/<class name>/")
    else:
        train_classes = top
    train_files = {folder: _image_files(folder) for folder in train_classes}
    if not split_layout and not any(train_files.values()):
        return None  # no images in any sub-folder: not an image folder at all
    classes = [p.name for p in train_classes]
    if len(classes) < 2:
        raise UserError(f"{train_classes[0].parent}: only one class folder ({classes[0]}); needs at least two classes")
    test_files = None
    if split_layout and "test" in names:
        test_classes = _class_folders(root / "test")
        test_names = [p.name for p in test_classes]
        if test_names != classes:
            missing = sorted(set(classes) - set(test_names))
            extra = sorted(set(test_names) - set(classes))
            raise UserError(f"{root / 'test'}: class folders differ from train/'s "
                            f"(missing: {', '.join(missing) or '-'}; not in train/: {', '.join(extra) or '-'})")
        test_files = {folder: _image_files(folder) for folder in test_classes}
    def decode() -> dict[str, np.ndarray]:
        skipped: list[str] = []
        x, y = _read_split(train_files, size, skip_bad_images, skipped)
        arrays = {"x": x, "y": y, "skipped": np.asarray(skipped, dtype=str)}
        if test_files:
            arrays["tx"], arrays["ty"] = _read_split(test_files, size, skip_bad_images, skipped)
            arrays["skipped"] = np.asarray(skipped, dtype=str)
        return arrays

    every_file = [(label, f) for split in (train_files, test_files or {}) for label, files in
                  enumerate(split.values()) for f in files]
    arrays = cached_arrays(folder_key(every_file, size=size, skip_bad_images=skip_bad_images), decode)
    train = torch.from_numpy(arrays["x"]), torch.from_numpy(arrays["y"])
    test = (torch.from_numpy(arrays["tx"]), torch.from_numpy(arrays["ty"])) if "tx" in arrays else None
    return classes, train, test, [str(s) for s in arrays["skipped"]]
