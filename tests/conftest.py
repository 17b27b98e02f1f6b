import os
import tempfile
import sys

import pytest

# Tests run on 2-core CI machines: keep torch from oversubscribing them.
os.environ.setdefault("OMP_NUM_THREADS", "2")
# In-process CLI runs stay one process (--jobs auto would start a peer per run); tests/test_jobs.py runs the
# default --jobs in a subprocess without this.
os.environ.setdefault("SCALESEARCH_JOBS", "1")
# The suite tests the CPU path unless a test says otherwise: on a machine with a GPU, `--device auto` (the
# default) would train the GPU preset, whose data and recipe the CPU tests do not describe. CUDA tests
# (tests/test_cuda.py) pass device="cuda" themselves. Forced, not a default: a user's own setting must not
# leak into the suite.
os.environ["SCALESEARCH_DEVICE"] = "cpu"
# Decoded-image cache of this test session, never the user's ~/.cache (subprocesses inherit it).
os.environ.setdefault("SCALESEARCH_CACHE", tempfile.mkdtemp(prefix="scalesearch-test-cache-"))


@pytest.fixture
def cli(capsys):
    """Run the real entry point in-process: returns (exit code, stdout, stderr)."""
    from scalesearch.cli import main

    def run(*args: str):
        with pytest.raises(SystemExit) as exc:
            main([str(a) for a in args])
        out, err = capsys.readouterr()
        return exc.value.code, out, err

    return run


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run with the working directory in a fresh temporary folder (runs/ lands there)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def one_line_error(err: str) -> str:
    """The one line a user error may print on stderr: nothing else, not even a blank line (rich's progress
    bar printed one on stop, started or not, when stderr is not a terminal)."""
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].strip(), f"expected exactly one error line, got:\n{err!r}"
    assert "Traceback" not in err
    return lines[0]


def catches_signal(pid: int, sig: int) -> bool:
    """Whether process `pid` has a handler for `sig` (Linux: SigCgt in /proc/PID/status): a test signals a
    command only once its handler is in, since before that Python's default says nothing about scalesearch."""
    try:
        line = next(l for l in open(f"/proc/{pid}/status") if l.startswith("SigCgt:"))
    except (OSError, StopIteration):
        return False
    return bool(int(line.split()[1], 16) >> (sig - 1) & 1)


sys.modules.setdefault("scalesearch_test_helpers", sys.modules[__name__])


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory):
    """240 synthetic images at 32 px in the .npz format users bring (one file per test module)."""
    import numpy as np

    from scalesearch.data.synthetic import make_synthetic

    path = tmp_path_factory.mktemp("data") / "tiny.npz"
    x, y = make_synthetic(240, 32, seed=5)
    np.savez(path, images=x.numpy(), labels=y.numpy())
    return path
