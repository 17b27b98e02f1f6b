"""What the user is told when a command or a worker process stops early, and with which exit status."""

import sys

EXIT_USER_ERROR = 2  # a bad option or input, refused before any work
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM; completed results are saved


class UserError(ValueError):
    """Something the user typed or pointed at is wrong. The CLI prints it as one line, exit code 2."""


def say_error(message: object) -> int:
    """One line on stderr for a refused input; the exit status it calls for."""
    print(f"scalesearch: error: {message}", file=sys.stderr)
    return EXIT_USER_ERROR


def say_interrupted() -> int:
    """One line on stderr for an interrupted command or worker; the exit status it calls for."""
    print("scalesearch: interrupted", file=sys.stderr)
    return EXIT_INTERRUPTED
