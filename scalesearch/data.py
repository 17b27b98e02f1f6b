"""Data sets as uint8 tensors: the embedded synthetic default and the user's own files.

Everything is loaded once into memory as uint8 [N, 3, H, W]; the trainer moves
it to the device and does resizing, cropping and flipping there (a 2-core host
cannot feed a DataLoader fast enough for a GPU, and a proxy trains many times).
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .errors import UserError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png"}


@dataclass
class ImageData:
    """Train/validation (and optional test) splits as uint8 NCHW tensors on the CPU."""

    name: str
    train_images: torch.Tensor
    train_labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor
    num_classes: int
    test_images: torch.Tensor | None = None
    test_labels: torch.Tensor | None = None
    class_names: list[str] = field(default_factory=list)

    @property
    def image_size(self) -> int:
        return int(self.train_images.shape[-1])

    @property
    def fingerprint(self) -> str:
        """Short SHA-256 over every split's pixels and labels: proves which data a result came from."""
        h = hashlib.sha256()
        for t in (self.train_images, self.train_labels, self.val_images, self.val_labels,
                  self.test_images, self.test_labels):
            if t is not None:
                h.update(t.contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    def describe(self) -> dict:
        return {
            "name": self.name, "num_classes": self.num_classes, "image_size": self.image_size,
            "train": len(self.train_labels), "val": len(self.val_labels),
            "test": 0 if self.test_labels is None else len(self.test_labels), "fingerprint": self.fingerprint,
        }


# ---------------------------------------------------------------- synthetic default

SYNTHETIC_TEXTURES = ("hstripes", "vstripes")
SYNTHETIC_SHAPES = ("disc", "ring", "cross")
SYNTHETIC_CLASSES = [f"{shape}-on-{texture}" for texture in SYNTHETIC_TEXTURES for shape in SYNTHETIC_SHAPES]


def make_synthetic(num_images: int, size: int = 64, seed: int = 0, chunk: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Procedural 6-class images where resolution, receptive field and capacity each matter.

    The class is (orientation of fine background stripes) x (shape of a large object):
    - the stripes have a 5-pixel period at 64 px and low contrast, so they fade
      when the input is downsampled: finer inputs pay off;
    - the object (disc, ring or cross, 20-32 px across at 64 px) can only be
      told apart by a receptive field that spans it: depth pays off;
    - colours, contrast, positions, sizes, a distractor blob and pixel noise vary
      per image: capacity (width) pays off.
    Every label survives horizontal flips and small crops, the trainer's augmentations.
    """
    g = torch.Generator().manual_seed(seed)
    images, labels = [], []
    for start in range(0, num_images, chunk):
        n = min(chunk, num_images - start)
        x, y = _synthetic_chunk(n, size, g)
        images.append(x)
        labels.append(y)
    return torch.cat(images), torch.cat(labels)


def _rand(g, n, lo, hi):
    return (lo + (hi - lo) * torch.rand(n, generator=g))[:, None, None]


def _synthetic_chunk(n: int, size: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    s = size / 64.0  # lengths below are given at 64 px and scaled
    labels = torch.randint(0, len(SYNTHETIC_CLASSES), (n,), generator=g)
    horizontal = (labels < len(SYNTHETIC_SHAPES))[:, None, None]
    shape = (labels % len(SYNTHETIC_SHAPES))[:, None, None]

    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")
    yy, xx = yy[None], xx[None]  # [1, S, S]

    # Background: a random colour carrying low-contrast stripes of a 5 px period.
    period = 5.0 * s
    coord = torch.where(horizontal, yy, xx) + _rand(g, n, 0, period)
    stripes = (((coord % period) < period / 2).float() - 0.5)[:, None]  # [n, 1, S, S], +-0.5
    bg = torch.rand(n, 3, 1, 1, generator=g) * 0.6 + 0.2
    contrast = torch.rand(n, 3, 1, 1, generator=g) * 0.25 + 0.15
    img = bg + contrast * stripes

    def paste(mask, colour):
        nonlocal img
        img = torch.where(mask[:, None], colour, img)

    # A smaller distractor blob (an ellipse) that is none of the class shapes.
    cy, cx = _rand(g, n, 6 * s, size - 6 * s), _rand(g, n, 6 * s, size - 6 * s)
    ry, rx = _rand(g, n, 2 * s, 5 * s), _rand(g, n, 2 * s, 5 * s)
    paste(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1, torch.rand(n, 3, 1, 1, generator=g))

    # The object: radius 10-16 px, placed fully inside the image, solid colour.
    r = _rand(g, n, 10 * s, 16 * s)
    oy = r + 1 + (size - 2 * r - 2) * torch.rand(n, 1, 1, generator=g)
    ox = r + 1 + (size - 2 * r - 2) * torch.rand(n, 1, 1, generator=g)
    dy, dx = (yy - oy).abs(), (xx - ox).abs()
    dist = (dy**2 + dx**2).sqrt()
    bar = r * 0.35
    inside = torch.where(shape == 0, dist <= r,
                         torch.where(shape == 1, (dist <= r) & (dist >= r * 0.55),
                                     ((dy <= bar) & (dx <= r)) | ((dx <= bar) & (dy <= r))))
    paste(inside, torch.rand(n, 3, 1, 1, generator=g))

    img = img + 0.05 * torch.randn(img.shape, generator=g)
    return (img.clamp(0, 1) * 255).round().to(torch.uint8), labels


def synthetic_data(num_train: int, num_val: int, num_test: int, size: int, seed: int = 0) -> ImageData:
    """The embedded default. Splits come from disjoint generator seeds, so they never overlap."""
    tr_x, tr_y = make_synthetic(num_train, size, seed * 3 + 0)
    va_x, va_y = make_synthetic(num_val, size, seed * 3 + 1)
    te_x, te_y = make_synthetic(num_test, size, seed * 3 + 2) if num_test else (None, None)
    return ImageData("synthetic", tr_x, tr_y, va_x, va_y, len(SYNTHETIC_CLASSES), te_x, te_y,
                     list(SYNTHETIC_CLASSES))


# ---------------------------------------------------------------- user data


def _split_validation(images: torch.Tensor, labels: torch.Tensor, val_fraction: float, seed: int):
    """Hold out a seeded, stratification-free random fraction of the training data for selection."""
    n = len(labels)
    n_val = max(1, int(round(n * val_fraction)))
    if n - n_val < 1:
        raise UserError(f"too few images ({n}) to hold out a validation split")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    val, train = perm[:n_val], perm[n_val:]
    return images[train], labels[train], images[val], labels[val]


def _to_nchw_uint8(arr: np.ndarray, what: str) -> torch.Tensor:
    if arr.dtype != np.uint8:
        raise UserError(f"{what}: images must be uint8 (0-255), got {arr.dtype}")
    if arr.ndim == 3:  # N, H, W grayscale
        arr = np.repeat(arr[:, None], 3, axis=1)
    elif arr.ndim == 4 and arr.shape[-1] in (1, 3) and arr.shape[1] not in (1, 3):
        arr = arr.transpose(0, 3, 1, 2)
    if arr.ndim != 4 or arr.shape[1] not in (1, 3) or arr.shape[2] != arr.shape[3]:
        raise UserError(f"{what}: expected square images shaped N,H,W,3 or N,3,H,W; got {arr.shape}")
    if arr.shape[1] == 1:
        arr = np.repeat(arr, 3, axis=1)
    return torch.from_numpy(np.ascontiguousarray(arr))


def _labels(arr, what: str) -> torch.Tensor:
    arr = np.asarray(arr)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer) or (arr.size and arr.min() < 0):
        raise UserError(f"{what}: labels must be a 1-D array of non-negative integers")
    return torch.from_numpy(arr.astype(np.int64))


def load_npz(path: Path) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """An .npz with `images`/`x` and `labels`/`y` (and optional `test_images`/`test_labels`)."""
    try:
        data = np.load(path, allow_pickle=False)  # never unpickle a user's file
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: not a readable .npz file ({exc})") from None
    keys = set(data.files)
    img_key = next((k for k in ("images", "x", "x_train", "data") if k in keys), None)
    lab_key = next((k for k in ("labels", "y", "y_train", "targets") if k in keys), None)
    if img_key is None or lab_key is None:
        raise UserError(f"{path}: expected arrays 'images' and 'labels' (or x/y); found {sorted(keys)}")
    x, y = _to_nchw_uint8(data[img_key], str(path)), _labels(data[lab_key], str(path))
    if len(x) != len(y):
        raise UserError(f"{path}: {len(x)} images but {len(y)} labels")
    tx = ty = None
    if "test_images" in keys and "test_labels" in keys:
        tx, ty = _to_nchw_uint8(data["test_images"], str(path)), _labels(data["test_labels"], str(path))
    return x, y, tx, ty


class _AllowListUnpickler(pickle.Unpickler):
    """Unpickles only what CIFAR's python-version batches contain: dicts, lists, bytes and numpy arrays."""

    ALLOWED = {
        ("numpy", "ndarray"), ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}: not CIFAR data")


def _read_cifar_pickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            obj = _AllowListUnpickler(f, encoding="bytes").load()
    except pickle.UnpicklingError as exc:
        raise UserError(f"{path}: unsafe or invalid CIFAR pickle ({exc})") from None
    except Exception as exc:  # truncated or foreign files
        raise UserError(f"{path}: cannot read as a CIFAR python batch ({exc})") from None
    if not isinstance(obj, dict):
        raise UserError(f"{path}: a CIFAR python batch is a dict")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _cifar_python_batch(path: Path):
    d = _read_cifar_pickle(path)
    label_key = "fine_labels" if "fine_labels" in d else "labels"
    if "data" not in d or label_key not in d:
        raise UserError(f"{path}: CIFAR batch without data/labels")
    data = np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
    return torch.from_numpy(data.copy()), _labels(d[label_key], str(path))


def _cifar_binary(path: Path, label_bytes: int):
    raw = np.fromfile(path, dtype=np.uint8)
    record = label_bytes + 3072
    if raw.size == 0 or raw.size % record:
        raise UserError(f"{path}: size {raw.size} is not a whole number of CIFAR records ({record} bytes)")
    raw = raw.reshape(-1, record)
    # CIFAR-100 records hold (coarse, fine) labels: the fine label is the last label byte.
    labels = torch.from_numpy(raw[:, label_bytes - 1].astype(np.int64))
    return torch.from_numpy(raw[:, label_bytes:].reshape(-1, 3, 32, 32).copy()), labels


def _cat(parts):
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])


def load_cifar(root: Path):
    """CIFAR-10/100 from their distributed files (binary or python version) in `root`."""
    bins10 = sorted(root.glob("data_batch_*.bin"))
    if bins10:
        train = _cat([_cifar_binary(p, 1) for p in bins10])
        test = _cifar_binary(root / "test_batch.bin", 1) if (root / "test_batch.bin").exists() else (None, None)
        return "cifar10", train, test, 10
    if (root / "train.bin").exists():
        test = _cifar_binary(root / "test.bin", 2) if (root / "test.bin").exists() else (None, None)
        return "cifar100", _cifar_binary(root / "train.bin", 2), test, 100
    py10 = sorted(p for p in root.glob("data_batch_*") if p.suffix == "")
    if py10:
        train = _cat([_cifar_python_batch(p) for p in py10])
        test = _cifar_python_batch(root / "test_batch") if (root / "test_batch").exists() else (None, None)
        return "cifar10", train, test, 10
    if (root / "train").is_file():
        test = _cifar_python_batch(root / "test") if (root / "test").is_file() else (None, None)
        return "cifar100", _cifar_python_batch(root / "train"), test, 100
    return None


def _class_dirs(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def _read_image_folder(root: Path, classes: list[str], size: int):
    from PIL import Image

    images, labels = [], []
    for label, name in enumerate(classes):
        folder = root / name
        if not folder.is_dir():
            continue
        for f in sorted(folder.rglob("*")):
            if f.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with Image.open(f) as im:
                    im = im.convert("RGB")
                    # Centre-crop to a square, then resize: the trainer works on square inputs.
                    side = min(im.size)
                    left, top = (im.width - side) // 2, (im.height - side) // 2
                    im = im.crop((left, top, left + side, top + side)).resize((size, size), Image.BILINEAR)
                    images.append(np.asarray(im, dtype=np.uint8).transpose(2, 0, 1))
            except OSError as exc:
                raise UserError(f"{f}: cannot read image ({exc})") from None
            labels.append(label)
    if not images:
        return None
    return torch.from_numpy(np.stack(images)), torch.tensor(labels, dtype=torch.int64)


def load_image_folder(root: Path, size: int):
    """One sub-folder per class of jpg/png files; `train/` and `test/` sub-trees are honoured."""
    if (root / "train").is_dir() and _class_dirs(root / "train"):
        classes = [p.name for p in _class_dirs(root / "train")]
        train = _read_image_folder(root / "train", classes, size)
        test = _read_image_folder(root / "test", classes, size) if (root / "test").is_dir() else None
    else:
        classes = [p.name for p in _class_dirs(root)]
        train, test = _read_image_folder(root, classes, size) if classes else None, None
    if train is None:
        return None
    return classes, train, test


def load_data(
    source: str | Path = "synthetic",
    *,
    seed: int = 0,
    val_fraction: float = 0.1,
    image_size: int = 64,
    synthetic_sizes: tuple[int, int, int] = (6000, 1000, 1000),
) -> ImageData:
    """`synthetic`, or a path whose format is detected: CIFAR folder, ImageFolder tree, or .npz file."""
    if str(source) == "synthetic":
        n_train, n_val, n_test = synthetic_sizes
        return synthetic_data(n_train, n_val, n_test, image_size, seed)
    path = Path(source)
    if not path.exists():
        raise UserError(f"--data {source}: no such file or directory (or write 'synthetic')")
    if path.is_file():
        if path.suffix.lower() != ".npz":
            raise UserError(f"--data {source}: a file must be an .npz with images and labels")
        name, (x, y, tx, ty) = path.stem, load_npz(path)
        classes: list[str] = []
    else:
        cifar = load_cifar(path)
        if cifar is not None:
            name, (x, y), (tx, ty), _ = cifar
            classes = []
        else:
            folder = load_image_folder(path, image_size)
            if folder is None:
                raise UserError(f"--data {source}: found no CIFAR files and no class folders with jpg/png images")
            classes, (x, y), test = folder
            tx, ty = test if test is not None else (None, None)
            name = path.name
    if len(y) == 0:
        raise UserError(f"--data {source}: the data set is empty")
    num_classes = int(y.max()) + 1 if not classes else len(classes)
    if num_classes < 2:
        raise UserError(f"--data {source}: needs at least two classes")
    tr_x, tr_y, va_x, va_y = _split_validation(x, y, val_fraction, seed)
    return ImageData(name, tr_x, tr_y, va_x, va_y, num_classes, tx, ty, classes)


# ---------------------------------------------------------------- on-device pipeline


def resize_on_device(images: torch.Tensor, resolution: int, device: torch.device, chunk: int = 4096) -> torch.Tensor:
    """uint8 NCHW -> uint8 at `resolution`, on `device`. Antialiased, so fine detail truly goes at low res."""
    out = []
    for start in range(0, len(images), chunk):
        x = images[start:start + chunk].to(device, non_blocking=True)
        if x.shape[-1] != resolution:
            x = F.interpolate(x.float(), size=(resolution, resolution), mode="bilinear", antialias=True,
                              align_corners=False).round().clamp(0, 255).to(torch.uint8)
        out.append(x)
    return torch.cat(out)


def augment_batch(x: torch.Tensor, pad: int) -> torch.Tensor:
    """Random crop (reflect-padded by `pad`) and horizontal flip, per sample, on x's device.

    Shapes and control flow are static, so this can live inside a CUDA graph.
    """
    n, c, h, w = x.shape
    if pad > 0:
        padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
        oy = torch.randint(0, 2 * pad + 1, (n, 1), device=x.device)
        ox = torch.randint(0, 2 * pad + 1, (n, 1), device=x.device)
        rows = (oy + torch.arange(h, device=x.device)).view(n, 1, h, 1).expand(n, c, h, w + 2 * pad)
        x = padded.gather(2, rows)
        cols = (ox + torch.arange(w, device=x.device)).view(n, 1, 1, w).expand(n, c, h, w)
        x = x.gather(3, cols)
    flip = torch.rand(n, 1, 1, 1, device=x.device) < 0.5
    return torch.where(flip, x.flip(3), x)
