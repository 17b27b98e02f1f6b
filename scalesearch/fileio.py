"""Atomic file writes: a crash or Ctrl-C never leaves a half-written result."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    # mkstemp creates 0600 files; give the result the mode a plain open() would (or keep the old file's).
    os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask())
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX and Windows
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def atomic_write_json(path: str | os.PathLike, data) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def _nearest_existing(path: Path) -> Path:
    """`path` or its closest ancestor that exists: where a write would need permission."""
    while not path.exists():
        path = path.parent
    return path


def check_writable(path: str | os.PathLike) -> None:
    """Raise OSError with a readable message if `path` (a file) cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise OSError(f"{path} is a directory, not a file")
    probe = _nearest_existing(path.parent)
    if not probe.is_dir() or not os.access(probe, os.W_OK):
        raise OSError(f"cannot write {path}: {probe} is not a writable directory")
    if path.exists() and not os.access(path, os.W_OK):
        raise OSError(f"cannot write {path}: permission denied")


def check_writable_dir(path: str | os.PathLike) -> None:
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OSError(f"{path} exists and is not a directory")
    probe = _nearest_existing(path)
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise OSError(f"cannot write to {path}: {probe} is not writable")
