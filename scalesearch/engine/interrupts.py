"""Ctrl-C (and SIGTERM, handled alike) that never lands inside a storage operation.

A KeyboardInterrupt raised in the middle of an Optuna storage call can leave the
SQLite connection inside an open transaction; the next write then fails with
"database is locked" and the clean "Interrupted ... run the same command to
resume" exit becomes a traceback (seen in the three-worker drill). So while a
study runs (`deferring`), SIGINT raises at once only inside `interruptible()`
sections (training a candidate, which touches no storage); anywhere else it is
remembered and raised at the next `checkpoint()`, between storage operations.
`shielded()` turns a storage call made from inside a training section (reporting
an epoch to the pruner) back into a deferring one. A Ctrl-C raised at once inside
a training section is remembered too: if the raise lands in a finaliser, which
Python reports as "Exception ignored" and drops (seen in CI), the section's end
raises it again, and that report is kept off the console.

Signal handlers run in the main thread only; elsewhere these are no-ops and
Python's default handling applies.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
import time

_requested = False
_live = False  # True inside an interruptible() section (and not shielded)


def _handler(signum, frame) -> None:
    global _requested
    # Remembered even when raised at once: the raise can land in a finaliser or a garbage-collector callback
    # that runs during training, where Python prints the exception and drops it; the section's end (or the
    # next checkpoint) then raises it again instead of letting the run go on as if Ctrl-C was never pressed.
    _requested = True
    if _live:
        raise KeyboardInterrupt


def requested() -> bool:
    return _requested


def checkpoint() -> None:
    """Raise the KeyboardInterrupt a Ctrl-C asked for, now that no storage operation is under way."""
    if _requested:
        raise KeyboardInterrupt


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def deferring():
    """Install the deferring SIGINT and SIGTERM handler for the duration (main thread only; nests)."""
    global _requested
    if not _main_thread() or signal.getsignal(signal.SIGINT) is _handler:
        yield
        return
    previous = signal.signal(signal.SIGINT, _handler)
    # SIGTERM (`timeout`, `kill`, a job scheduler) stops the run the same way, at a safe point: by default it
    # would end the process at once (the CLI turns it into an immediate KeyboardInterrupt) and leave the workers
    # it started, in sessions of their own, going on with the study. A SIGTERM the parent ignores stays ignored.
    previous_term = signal.getsignal(signal.SIGTERM)
    if previous_term is not signal.SIG_IGN:
        signal.signal(signal.SIGTERM, _handler)
    previous_hook = sys.unraisablehook
    _requested = False

    def quiet_about_ctrl_c(unraisable) -> None:
        # A finaliser that swallowed our KeyboardInterrupt: not an error (it is raised again at the end of the
        # section), so no "Exception ignored ... Traceback" on the console. Anything else is reported as usual.
        if isinstance(unraisable.exc_value, KeyboardInterrupt) and _requested:
            return
        previous_hook(unraisable)

    sys.unraisablehook = quiet_about_ctrl_c
    try:
        yield
    finally:
        # None: a handler not installed from Python; the default is the closest Python can put back.
        signal.signal(signal.SIGINT, signal.SIG_DFL if previous is None else previous)
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous_term is None else previous_term)
        sys.unraisablehook = previous_hook
        _requested = False


@contextlib.contextmanager
def _live_as(value: bool):
    global _live
    saved = _live
    _live = value
    try:
        yield
    finally:
        _live = saved


@contextlib.contextmanager
def interruptible():
    """A section that a Ctrl-C may interrupt at once (it must not touch the storage)."""
    global _requested
    checkpoint()
    try:
        with _live_as(True):
            yield
    except KeyboardInterrupt:
        _requested = False  # delivered: it leaves the section like any Ctrl-C under Python's own handler
        raise
    checkpoint()  # an interrupt whose raise was swallowed inside the section


@contextlib.contextmanager
def shielded():
    """A storage operation inside an interruptible section: Ctrl-C waits until it is done."""
    with _live_as(False):
        yield
    checkpoint()


def sleep(seconds: float) -> None:
    """Sleep, but wake within a fraction of a second when Ctrl-C was pressed (then raise)."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        checkpoint()
        time.sleep(min(0.2, max(0.0, end - time.monotonic())))
    checkpoint()


@contextlib.contextmanager
def sigterm_interrupts():
    """SIGTERM (`timeout`, `kill`, a job scheduler) interrupts an API call the way Ctrl-C does, from its first
    instruction: the run then stops its peers and writes its files. Only where SIGTERM has Python's default
    (it would end the process at once); a handler of the caller's (the command's, launch.py), or an ignored
    SIGTERM, is left alone."""
    if not _main_thread() or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
