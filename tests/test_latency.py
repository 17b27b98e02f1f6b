"""Measured forward latency (scalesearch/latency.py), CPU only.

The machine is shared and noisy: no test asserts a time, only orderings with wide margins and identities.
"""

from __future__ import annotations

import json

import pytest
import torch

from scalesearch import latency as lat
from scalesearch.errors import UserError
from scalesearch.latency import (Latency, check_latency_batch, check_latency_device, clear_latency_cache,
                                 measure_latency)

PROXY = dict(depth_mult=0.5, width_mult=0.25, resolution=42, num_classes=10)  # the CPU preset's proxy


@pytest.fixture(autouse=True)
def fresh_caches(tmp_path, monkeypatch):
    """Each test starts with no figures: its own disk cache and an empty process cache."""
    monkeypatch.setenv("SCALESEARCH_CACHE", str(tmp_path / "cache"))
    clear_latency_cache()
    yield tmp_path / "cache"
    clear_latency_cache()


def test_four_times_the_work_is_clearly_slower():
    # At the 42 px proxy a forward pass is mostly per-layer overhead; at width 0.5 and 160 px the
    # arithmetic dominates, so doubling the resolution (~4x the multiply-adds) shows (~3x measured).
    small = measure_latency("efficientnet", depth_mult=0.5, width_mult=0.5, resolution=160, num_classes=10)
    large = measure_latency("efficientnet", depth_mult=0.5, width_mult=0.5, resolution=320, num_classes=10)
    assert large.median_ms > 1.5 * small.median_ms, (small, large)


def test_cached_and_fresh_measurements():
    first = measure_latency("efficientnet", **PROXY)
    assert isinstance(first, Latency)
    assert measure_latency("efficientnet", **PROXY) is first  # the process cache: the same figure
    again = measure_latency("efficientnet", **PROXY, cached=False)
    assert again is not first
    assert first.median_ms / 2 < again.median_ms < first.median_ms * 2, (first, again)
    assert measure_latency("efficientnet", **PROXY) is first  # cached=False kept nothing


def test_fields_batch_and_settings_left_alone():
    threads, rng = torch.get_num_threads(), torch.random.get_rng_state()
    shape = dict(PROXY, resolution=64)
    one = measure_latency("efficientnet", **shape)
    four = measure_latency("efficientnet", **shape, batch=4)
    assert torch.get_num_threads() == threads  # pinned for the measurement only
    assert torch.equal(torch.random.get_rng_state(), rng)  # seeded in a forked stream
    for figure, batch in ((one, 1), (four, 4)):
        assert figure.batch == batch and figure.repeats == lat.REPEATS
        assert figure.spread >= 0 and figure.median_ms > 0
        assert figure.device.startswith(f"cpu (1 thread, torch {torch.__version__}")
        assert figure.to_dict() == {"median_ms": figure.median_ms, "spread": figure.spread,
                                    "repeats": figure.repeats, "batch": batch, "device": figure.device}
    assert four.median_ms > one.median_ms, (one, four)


def test_disk_cache_is_read_back(fresh_caches, monkeypatch):
    first = measure_latency("efficientnet", **PROXY)
    stored = list((fresh_caches / "latency").glob("*.json"))
    assert len(stored) == 1 and json.loads(stored[0].read_text()) == first.to_dict()
    clear_latency_cache()

    def no_measuring(*args, **kwargs):
        raise AssertionError("measured again instead of reading the disk cache")

    monkeypatch.setattr(lat, "_measure", no_measuring)
    assert measure_latency("efficientnet", **PROXY) == first
    # Another batch or resolution is another entry, not this one.
    with pytest.raises(AssertionError, match="measured again"):
        measure_latency("efficientnet", **PROXY, batch=2)


@pytest.mark.parametrize("kind", ["read-only", "under-a-file", "off"])
def test_unusable_cache_dir_does_not_fail(tmp_path, monkeypatch, kind):
    if kind == "read-only":
        root = tmp_path / "ro"
        root.mkdir()
        root.chmod(0o555)  # root may still write here; "under-a-file" fails for everyone
    elif kind == "under-a-file":
        (tmp_path / "file").write_text("")
        root = tmp_path / "file" / "cache"
    monkeypatch.setenv("SCALESEARCH_CACHE", "off" if kind == "off" else str(root))
    try:
        figure = measure_latency("efficientnet", **PROXY)
        assert figure.median_ms > 0
        assert measure_latency("efficientnet", **PROXY) is figure  # the process cache still works
    finally:
        if kind == "read-only":
            root.chmod(0o755)


def _one_line(exc_info) -> str:
    message = str(exc_info.value)
    assert message.strip() and "\n" not in message
    return message


def test_device_and_batch_checks():
    check_latency_device("cpu")
    with pytest.raises(UserError) as exc:
        check_latency_device("tpu")
    assert "tpu" in _one_line(exc)
    if not torch.cuda.is_available():
        with pytest.raises(UserError) as exc:
            check_latency_device("cuda")
        assert "--latency-device cpu" in _one_line(exc)
        with pytest.raises(UserError):
            measure_latency("efficientnet", **PROXY, device="cuda")
    for batch in (1, 4, 4096):
        check_latency_batch(batch)
    for batch in (0, -1, 4097, 2.5, True, "4"):
        with pytest.raises(UserError) as exc:
            check_latency_batch(batch)
        assert "--latency-batch" in _one_line(exc)
