"""The `scalesearch` command's first instructions: Ctrl-C and SIGTERM are ours before anything heavy loads.

Signals are the command's from here to its exit, in one place: one arriving while torch, typer or the data
load would otherwise kill the process (SIGTERM) or print a traceback (SIGINT), and one whose
KeyboardInterrupt a library swallowed, which let a command finish with status 0 and nothing said. Every
interrupted command ends with status 130 and one line. While a study runs, the engine defers both signals
to a safe point between storage operations (engine/interrupts.py) and puts this handler back afterwards.
"""

from __future__ import annotations

import signal
import sys

_interrupted = False


def _on_signal(signum, frame) -> None:
    global _interrupted
    _interrupted = True  # remembered: a library may swallow the KeyboardInterrupt raised here
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is not signal.SIG_IGN:  # a signal the parent ignores (`nohup`, `&`) stays ignored
            signal.signal(sig, _on_signal)
    try:
        from .cli import main as cli_main

        cli_main(argv)  # exits: SystemExit with the command's status
    except KeyboardInterrupt:  # before the command's own handling took over, or after it let go
        _exit_interrupted(say=True)
    except SystemExit as exc:
        if _interrupted:  # signalled: 130 whatever the command's ending said, and said once
            _exit_interrupted(say=exc.code in (0, None))
        raise


def _exit_interrupted(*, say: bool) -> None:
    """Exit 130 now: the interpreter's shutdown could still meet the signal's KeyboardInterrupt (seen: a run
    that had said 'interrupted' ended killed by SIGINT, status -2). The study and files are written by now."""
    import os

    if say:
        print("scalesearch: interrupted", file=sys.stderr)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(130)
