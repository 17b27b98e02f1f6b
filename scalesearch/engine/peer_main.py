"""A peer worker: `SCALESEARCH_PEER_CALL='{"function": "grid", "kwargs": {...}}' python -m scalesearch.engine.peer_main`.

Started by workers.PeerGroup with the first process's API call; logs go to stderr (its log file in
`<out>/.workers/`). Exit status as the command line's: 0 done, 2 a user error, 130 interrupted.
"""

from __future__ import annotations

import json
import logging
import os
import sys


def main() -> int:
    try:
        from .. import api
        from ..errors import UserError
        from .peers import CALL_ENV
    except KeyboardInterrupt:  # stopped while starting up
        return 130
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
        print(f"scalesearch: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("scalesearch: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
