"""Opening the study's storage, hiding passwords, serialising workers on one machine, and the heartbeat of a
running trial.

Timing invariant (tested): a live trial must never look dead to a peer. A
worker can be stuck waiting for the SQLite write lock for up to
SQLITE_LOCK_TIMEOUT seconds, during which its heartbeat thread cannot write
either; the grace period after which peers fail a silent trial therefore
exceeds that wait plus one heartbeat interval, with room to spare.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from pathlib import Path

import optuna

from ..errors import UserError

log = logging.getLogger("scalesearch.engine")

HEARTBEAT_SECONDS = 5
SQLITE_LOCK_TIMEOUT = 30  # seconds a connection waits for SQLite's write lock before failing
GRACE_SECONDS = SQLITE_LOCK_TIMEOUT + 3 * HEARTBEAT_SECONDS  # a RUNNING trial silent this long is dead
# A RUNNING trial that never got its first heartbeat is dead after this long (queue invariant I5). Twice
# the grace: popping a trial and starting its objective can wait on the SQLite lock more than once.
ORPHAN_SECONDS = 2 * GRACE_SECONDS


def _password(url: str) -> str | None:
    """The password in a database URL, also when it holds an unescaped '@' (the last '@' ends it)."""
    _, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return None
    userinfo = rest.rpartition("@")[0]
    if "/" in userinfo.partition(":")[0]:  # an '@' in a file path (sqlite:////tmp/a@b.db), not credentials
        return None
    return userinfo.partition(":")[2] or None


def redact_secret(text: str, url: str) -> str:
    """`text` (a command line) with the password of the database `url` replaced by ***."""
    secret = _password(url)
    return text.replace(secret, "***") if secret else text


def redact_url(url: str) -> str:
    """The URL with its password hidden, for messages and best.json.

    SQLAlchemy renders it when it parses the URL as the user meant it; a raw '@'
    inside the password makes SQLAlchemy split at the wrong '@' (and leak the
    rest), so then the password is cut at the last '@' instead.
    """
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    secret = _password(url)
    if secret is None:
        return url
    try:
        parsed = make_url(url)
        if parsed.password == secret:
            return parsed.render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        pass
    scheme, _, rest = url.partition("://")
    head, _, tail = rest.rpartition("@")
    return f"{scheme}://{head.partition(':')[0]}:***@{tail}"


def _sqlite_begin_immediate(engine) -> None:
    """Make every SQLite transaction take the write lock up front.

    SQLite ignores SELECT ... FOR UPDATE, so two processes could pop the same
    queued trial; BEGIN IMMEDIATE serialises them.
    """
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection, _record):
        dbapi_connection.isolation_level = None  # let us issue BEGIN ourselves

    @event.listens_for(engine, "begin")
    def _begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections opened before the hooks must not be reused


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """An RDB storage with heartbeats; UserError (one line, password hidden) when it cannot be opened.

    Trials of dead workers are failed by `fail_stale_trials` and re-queued by
    the work queue (scalesearch.engine.queue), not by Optuna's retry callback:
    one mechanism re-queues everything, so attempts are counted in one place.
    """
    from optuna.storages import RDBStorage

    sqlite = url.startswith("sqlite")
    engine_kwargs = {"connect_args": {"timeout": SQLITE_LOCK_TIMEOUT}} if sqlite else {"pool_pre_ping": True}
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)  # heartbeat API
    for attempt in range(4):
        try:
            storage = RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_SECONDS,
                                 grace_period=GRACE_SECONDS)
            break
        except Exception as exc:  # bad URL, unknown driver, unreachable server, wrong password
            text = str(exc)
            # Workers that start together on a new database race to create its schema: try again.
            if attempt < 3 and any(k in text for k in ("UNIQUE", "duplicate key", "already exists", "locked")):
                time.sleep(0.5 + attempt)
                continue
            first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
            secret = _password(url)
            if secret:
                first = first.replace(secret, "***")
            raise UserError(f"--storage: cannot open {redact_url(url)}: {first}") from None
    if sqlite:
        _sqlite_begin_immediate(storage.engine)
    return storage


@contextlib.contextmanager
def run_dir_lock(out_dir: Path):
    """Serialise the workers of one machine while they create the schema and fill the queue.

    A maintained cross-platform lock (filelock) rather than a hand-made flock;
    across machines the queue's lowest-number rule keeps evaluation exactly-once.
    """
    from filelock import FileLock

    out_dir.mkdir(parents=True, exist_ok=True)
    with FileLock(str(out_dir / ".lock")):
        yield


def mark_alive(trial: optuna.Trial, trial_id: int | None = None) -> None:
    """Record the first heartbeat ourselves, then mark the trial alive (queue invariant I5).

    A trial with the mark always has a heartbeat for the stale check. Through `Trial.storage` and the
    storage's heartbeat methods (Optuna's BaseHeartbeat; pinned to optuna 5), no private attribute.
    """
    storage = trial.storage
    if callable(getattr(storage, "record_heartbeat", None)) and storage.get_heartbeat_interval():
        storage.record_heartbeat(trial_id if trial_id is not None else storage_trial_id(trial))
    trial.set_user_attr("alive", True)


def storage_trial_id(trial: optuna.Trial) -> int:
    """The storage's id of `trial`, from its study's name and its number."""
    storage = trial.storage
    return storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(trial.study.study_name),
                                                           trial.number)


class Heartbeat:
    """Records the running trial's heartbeat every interval while it is evaluated (a daemon thread).

    Optuna beats only inside `Study.optimize`; this loop uses `ask`/`tell`, so it beats itself through the
    storage's heartbeat methods. Without heartbeats (in-memory storages) it does nothing.
    """

    def __init__(self, trial: optuna.Trial, trial_id: int | None):
        import threading

        storage = trial.storage
        self.interval = storage.get_heartbeat_interval() if callable(getattr(storage, "record_heartbeat", None)) \
            else None
        self.stop = threading.Event()
        self.thread = None
        if self.interval:
            number = trial.number

            def beat() -> None:
                missed = 0
                while not self.stop.wait(self.interval):
                    try:
                        storage.record_heartbeat(trial_id)
                        missed = 0
                    except Exception as exc:  # noqa: BLE001 - a missed beat is retried; the grace period covers it
                        missed += 1
                        (log.warning if missed == 2 else log.debug)(
                            "trial %d: heartbeat not recorded (%d in a row): %s", number, missed, exc)

            self.thread = threading.Thread(target=beat, name="scalesearch-heartbeat", daemon=True)

    def __enter__(self) -> "Heartbeat":
        if self.thread is not None:
            self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        if self.thread is not None:
            # A beat stuck on a dead connection must not hold the run: the thread is a daemon.
            self.thread.join(timeout=2 * self.interval)
            if self.thread.is_alive():
                log.warning("heartbeat thread still blocked in the storage after %d s; going on without it",
                            2 * self.interval)
