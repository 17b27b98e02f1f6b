"""Decoded image folders cached on disk: workers and later runs do not decode the same files again.

Decoding a folder of JPEGs is the slowest part of starting a run, and every worker of a study (`--jobs`,
or the same command started by hand) would otherwise do it again. The key covers the image size, the
skip option and every file's path, size and modification time, so a changed, added or removed file
gives a new entry. The value is one .npz of uint8 arrays, written atomically; a lock file makes workers
starting together decode once (the others wait, then read the result).

Location: $SCALESEARCH_CACHE, else $XDG_CACHE_HOME/scalesearch, else ~/.cache/scalesearch;
SCALESEARCH_CACHE=off turns it off. Entries can be deleted at any time. The same directory keeps measured
network costs (costs/, see scalesearch/cost.py) and latencies (latency/, scalesearch/latency.py), through
`cached_json`.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from pathlib import Path
from typing import Callable, Iterable, TypeVar

import numpy as np

log = logging.getLogger("scalesearch.data")
FORMAT = 1  # bump when what a cached entry holds changes


def cache_dir() -> Path | None:
    chosen = os.environ.get("SCALESEARCH_CACHE")
    if chosen is not None:
        return None if chosen.strip().lower() in ("off", "0", "") else Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "scalesearch"


def folder_key(files: Iterable[tuple[int, Path]], *, size: int, skip_bad_images: bool) -> str:
    """A digest of (label, path, bytes, mtime) of every file plus the decoding options."""
    h = hashlib.sha256(f"format {FORMAT} size {size} skip {skip_bad_images}\n".encode())
    for label, path in files:
        st = path.stat()
        h.update(f"{label}\t{path.resolve()}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:32]


def cached_arrays(key: str, decode: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """`decode()`'s arrays, from the cache when an entry for `key` exists; stored there otherwise."""
    root = cache_dir()
    if root is None:
        return decode()
    entry = root / "decoded" / f"{key}.npz"
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # a read-only home: run without the cache
        log.debug("no decode cache (%s)", exc)
        return decode()
    from filelock import FileLock

    with FileLock(str(entry) + ".lock"):
        if entry.exists():
            try:
                with np.load(entry, allow_pickle=False) as archive:
                    return {k: archive[k] for k in archive.files}
            except Exception as exc:  # noqa: BLE001 - a damaged entry is decoded again, not fatal
                log.debug("decode cache entry %s unreadable (%s); decoding again", entry, exc)
        arrays = decode()
        from ..fileio import atomic_write_bytes

        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        try:
            atomic_write_bytes(entry, buffer.getvalue())
        except OSError as exc:  # a full disk must not cost the run
            log.debug("decode cache not written (%s)", exc)
        return arrays


T = TypeVar("T")


def cached_json(kind: str, key: list, compute: Callable[[], T], *, load: Callable[[dict], T],
                dump: Callable[[T], dict]) -> T:
    """`compute()`'s result, read back from cache_dir()/kind/ when an entry for `key` exists, stored there
    (atomically) otherwise. `key` holds everything the result depends on, versions included: its JSON text's
    digest names the file. An entry `load` cannot read (another layout) is computed again; a missing,
    read-only or full cache directory never costs the caller its result."""
    import json

    root = cache_dir()
    entry = None
    if root is not None:
        text = json.dumps(key, default=list)
        entry = root / kind / f"{hashlib.sha256(text.encode()).hexdigest()[:32]}.json"
        try:
            if entry.exists():
                return load(json.loads(entry.read_text()))
        except (OSError, ValueError, TypeError):  # unreadable or from another layout: computed again
            pass
    value = compute()
    if entry is not None:
        from ..fileio import atomic_write_json

        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(entry, dump(value))
        except OSError:
            pass
    return value
