"""Atomic file writes: a crash or Ctrl-C never leaves a half-written result."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    # mkstemp creates 0600 files; give the result the mode a plain open() would (or keep the old file's).
    os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask())
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)  # atomic on POSIX and Windows
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def atomic_write_json(path: str | os.PathLike, data) -> Path:
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def probe_writable_dir(path: str | os.PathLike) -> Path:
    """Create `path` (and parents) and a temporary file in it, then remove the file; OSError if that fails.

    Asking os.access is not enough: as root it says yes almost everywhere (under
    /proc too), and the run would then crash after the work. Creating is the
    only honest probe.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OSError(f"{path} exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path, prefix=".probe.", suffix=".tmp")
        os.close(fd)
        os.unlink(tmp)
    except OSError as exc:
        raise OSError(f"cannot write to {path}: {exc.strerror or exc}") from None
    return path


def probe_writable_file(path: str | os.PathLike) -> Path:
    """Check that `path` (a file) can be written, by creating its folder and a temporary file beside it."""
    path = Path(path)
    if path.is_dir():
        raise OSError(f"{path} is a directory, not a file")
    if path.parent.exists() and not path.parent.is_dir():
        raise OSError(f"cannot write {path}: {path.parent} is not a directory")
    probe_writable_dir(path.parent if str(path.parent) else Path("."))
    if path.exists() and not os.access(path, os.W_OK):
        raise OSError(f"cannot write {path}: permission denied")
    return path
