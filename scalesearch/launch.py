"""The two entry points, the `scalesearch` command and a `--jobs` peer, with one exit policy (errors.py):
0 done, 2 a user error, 130 interrupted, each said in one line.

The command's first instructions make Ctrl-C and SIGTERM ours before anything heavy loads.

Signals are the command's from here to its exit, in one place: one arriving while torch, typer or the data
load would otherwise kill the process (SIGTERM) or print a traceback (SIGINT), and one whose
KeyboardInterrupt a library swallowed, which let a command finish with status 0 and nothing said. Every
interrupted command ends with status 130 and one line. While a study runs, the engine defers both signals
to a safe point between storage operations (engine/interrupts.py) and puts this handler back afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import sys

from .errors import EXIT_INTERRUPTED, UserError, say_error, say_interrupted

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
    if say:
        say_interrupted()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(EXIT_INTERRUPTED)


def peer_main() -> None:
    """A peer worker of a `jobs=N` run (engine/peers.py starts it): the first process's API call, read as JSON
    from the environment, run to the end in this process. Logs go to stderr (its file in `<out>/.workers/`)."""
    try:
        import logging

        from . import api
        from .engine.peers import CALL_ENV
    except KeyboardInterrupt:  # stopped while starting up
        sys.exit(EXIT_INTERRUPTED)
    call = json.loads(os.environ[CALL_ENV])
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    logging.getLogger("optuna").setLevel(logging.WARNING)  # our own trial lines say what happened
    log = logging.getLogger("scalesearch")

    def on_trial(info: dict) -> None:
        acc = info.get("value")
        log.info("trial %d %s seed %s %s", info["trial"], info["state"], info.get("seed", 0),
                 f"acc {acc:.4f}" if acc is not None else info.get("reason", ""))

    try:
        getattr(api, call["function"])(**call["kwargs"], on_trial=on_trial)
    except UserError as exc:
        sys.exit(say_error(exc))
    except KeyboardInterrupt:
        sys.exit(say_interrupted())
    sys.exit(0)
