"""Hugging Face datasets (the optional `hf` extra): a `save_to_disk` folder, or a folder of parquet files, with an
image column and an integer or ClassLabel label column.

Splits are used as they are named: `train` (validation is held out of it, as for every format) and optionally
`test`; a folder of parquet files names its splits by file or folder (`train-00000-of-00001.parquet`,
`data/test.parquet`, `train/*.parquet`). Images are decoded once, as image folders are (EXIF, modes,
transparency and decompression bombs alike, read_image), into the same cache, keyed on every file of the folder.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from .cache import cached_arrays, folder_key
from .images import SKIP_HINT, decode_in_parallel

INSTALL_HINT = "pip install 'scalesearch[hf]' (the datasets library)"
SPLITS = ("train", "test")
_OTHER_SPLITS = ("validation", "valid", "val", "dev")
_IMAGE_NAMES = ("image", "img", "images", "picture", "pixel_values")
_LABEL_NAMES = ("label", "labels", "class", "target", "fine_label", "coarse_label")


def is_hf_folder(path: Path) -> bool:
    """A `save_to_disk` folder (its JSON markers), or a folder with parquet files at most two levels down."""
    if not path.is_dir():
        return False
    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        return True
    return any(path.glob("*.parquet")) or any(path.glob("*/*.parquet")) or any(path.glob("*/*/*.parquet"))


def _split_of(file: Path, root: Path) -> str:
    """The split a parquet file belongs to: a folder on its path, else its name's first word."""
    parts = [p.lower() for p in file.relative_to(root).parts[:-1]]
    words = file.stem.lower().replace("_", "-").split("-")
    for candidate in (*parts, words[0]):
        if candidate in SPLITS or candidate in _OTHER_SPLITS:
            return candidate
    return "train"


def _open(path: Path):
    """{split: datasets.Dataset} of the folder."""
    try:
        import datasets
    except ImportError:
        raise UserError(f"--data {path}: a Hugging Face dataset folder; reading it needs the hf extra: "
                        f"{INSTALL_HINT}") from None
    datasets.disable_progress_bars()
    try:
        if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
            loaded = datasets.load_from_disk(str(path))
            return dict(loaded) if isinstance(loaded, datasets.DatasetDict) else {"train": loaded}
        files: dict[str, list[str]] = {}
        for f in sorted(path.rglob("*.parquet")):
            if not any(part.startswith(".") for part in f.relative_to(path).parts):
                files.setdefault(_split_of(f, path), []).append(str(f))
        return dict(datasets.load_dataset("parquet", data_files=files))
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign folder: one line, named
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise UserError(f"--data {path}: cannot read it as a Hugging Face dataset ({first})") from None


def _columns(path: Path, split, image_column: str | None, label_column: str | None) -> tuple[str, str]:
    """The image and label columns: as named, else the Image feature and the ClassLabel feature, else the usual
    names. UserError naming the option to use when either cannot be found."""
    import datasets

    features = split.features

    def find(kind: type, names: tuple[str, ...], what: str, option: str) -> str:
        """The first column of feature type `kind`, else the first of the usual `names`."""
        found = [n for n, f in features.items() if isinstance(f, kind)] or [n for n in names if n in features]
        if not found:
            raise UserError(f"--data {path}: no {what} {'/'.join(names)}) among {', '.join(features)}; name it "
                            f"with {option}")
        return found[0]

    if image_column is None:
        image_column = find(datasets.Image, _IMAGE_NAMES, "image column (an Image feature, or one named",
                            "--image-column")
    if label_column is None:
        label_column = find(datasets.ClassLabel, _LABEL_NAMES,
                            "label column (a ClassLabel feature, or an integer column named", "--label-column")
    for option, name in (("--image-column", image_column), ("--label-column", label_column)):
        if name not in features:
            raise UserError(f"--data {path}: {option} {name!r} is not a column (columns: {', '.join(features)})")
    label = features[label_column]
    if not (isinstance(label, datasets.ClassLabel)
            or (isinstance(label, datasets.Value) and label.dtype.startswith(("int", "uint")))):
        raise UserError(f"--data {path}: the label column {label_column!r} holds {label}, not integers or a "
                        "ClassLabel; name another with --label-column")
    return image_column, label_column


def _sources(path: Path, split, image_column: str) -> tuple[list, list[str]]:
    """Each row's image as something read_image opens (its encoded bytes, or its file), and its name."""
    import datasets

    raw = split.cast_column(image_column, datasets.Image(decode=False)) \
        if isinstance(split.features[image_column], datasets.Image) else split
    sources, names = [], []
    for i, value in enumerate(raw[image_column]):
        name = f"{path} row {i}"
        if isinstance(value, dict) and value.get("bytes"):
            sources.append(io.BytesIO(value["bytes"]))
        elif isinstance(value, dict) and value.get("path"):
            sources.append(Path(value["path"]))
        elif isinstance(value, (bytes, bytearray)):
            sources.append(io.BytesIO(value))
        else:
            sources.append(io.BytesIO(b""))  # read_image then refuses it, naming the row
            name += f" (no encoded image: {type(value).__name__})"
        names.append(name)
    return sources, names


def _decode_split(path: Path, split, name: str, image_column: str, label_column: str, size: int,
                  skip_bad_images: bool, skipped: list[str]) -> tuple[np.ndarray, np.ndarray]:
    sources, names = _sources(path, split, image_column)
    labels = np.asarray(split[label_column], dtype=np.int64)
    if len(labels) and labels.min() < 0:
        raise UserError(f"--data {path}: split {name} has label {int(labels.min())}; labels must be 0 or more "
                        "(unlabelled rows, -1, cannot be trained on)")
    images, kept = [], []
    for i, result in enumerate(decode_in_parallel(sources, size, names=names)):
        if isinstance(result, UserError):
            if not skip_bad_images:
                raise UserError(f"{result}; {SKIP_HINT}") from None
            skipped.append(names[i])
            continue
        images.append(result)
        kept.append(labels[i])
    if not images:
        raise UserError(f"--data {path}: split {name} has no image that could be read")
    return np.stack(images), np.asarray(kept, dtype=np.int64)


def load_hf_folder(path: Path, size: int, *, image_column: str | None = None, label_column: str | None = None,
                   skip_bad_images: bool = False):
    """(class names, train split, test split or None, skipped rows) of a Hugging Face dataset folder."""
    splits = _open(path)
    others = sorted(set(splits) - set(SPLITS))
    if "train" not in splits:
        raise UserError(f"--data {path}: no train split (splits: {', '.join(sorted(splits)) or 'none'})")
    if others:
        raise UserError(f"--data {path}: unexpected split {others[0]!r}: the layout is train and optionally test; "
                        "validation is held out of train")
    image_column, label_column = _columns(path, splits["train"], image_column, label_column)
    if "test" in splits:
        _columns(path, splits["test"], image_column, label_column)
    label = splits["train"].features[label_column]
    names = list(getattr(label, "names", []) or [])

    def decode() -> dict[str, np.ndarray]:
        skipped: list[str] = []
        arrays = {}
        arrays["x"], arrays["y"] = _decode_split(path, splits["train"], "train", image_column, label_column, size,
                                                 skip_bad_images, skipped)
        if "test" in splits:
            arrays["tx"], arrays["ty"] = _decode_split(path, splits["test"], "test", image_column, label_column,
                                                       size, skip_bad_images, skipped)
        arrays["skipped"] = np.asarray(skipped, dtype=str)
        return arrays

    files = [(0, f) for f in sorted(path.rglob("*")) if f.is_file() and not f.name.endswith(".lock")]
    key = folder_key(files, size=size, skip_bad_images=skip_bad_images)
    key = hashlib.sha256(f"hf {key} {image_column} {label_column}".encode()).hexdigest()[:32]
    arrays = cached_arrays(key, decode)
    y = arrays["y"]
    classes = names or [str(i) for i in range(int(y.max()) + 1)]
    train = torch.from_numpy(arrays["x"]), torch.from_numpy(y)
    test = (torch.from_numpy(arrays["tx"]), torch.from_numpy(arrays["ty"])) if "tx" in arrays else None
    return classes, train, test, [str(s) for s in arrays["skipped"]]
