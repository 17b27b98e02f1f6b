"""The exactly-once work queue, kept entirely in an Optuna study.

A *work item* is one candidate (its parameters: `alpha, beta` on the grid,
`s1, s2` from a sampler) trained with one seed index. Every attempt at an item
is an Optuna trial; the trial's user attribute `seed` holds the seed index (0
for a trial a sampler proposes). The study in the storage is the only state:
any worker on any machine reaches the same conclusions from it.

Outcome of a trial (`trial_outcome`):
  final      complete, rejected, pruned, diverged, oom, failed
  retryable  interrupted (Ctrl-C; not counted as an attempt), error (an unexpected
             exception in the trial), lost (FAIL with no outcome recorded: its
             process died, seen on its machine or by a stale heartbeat)
  pending    waiting, running
  stray      a duplicate attempt that stepped aside: ignored by everything here

Invariants (each has a unit test in tests/test_queue.py):
  I1 settled   An item is settled when one of its non-stray trials has a final
               outcome, or when MAX_ATTEMPTS of its attempts ended in error or
               lost; it then settles as failed, with the last error as reason.
  I2 once      A trial may evaluate its item only if no lower-numbered non-stray
               trial of that item is pending or final (`claim`). Trial numbers
               are unique across workers and machines, so of two copies queued at
               the same moment the lower one wins everywhere.
  I3 no hole   Whenever a worker looks for work it re-queues every wanted item
               that is neither settled nor pending (`ensure_queued`), not only
               at start-up: work abandoned by a peer is picked up by the rest.
  I4 honest    A worker stops only when every wanted item is settled and nothing
               is pending; a study is complete iff every wanted item is settled.
  I5 no orphan A RUNNING trial whose process died is eventually failed, also when
               it died before its first heartbeat (Optuna's stale-trial check
               skips a trial that has none, so without I5 the study waits
               forever). A worker marks its trial `alive` right after recording
               the first heartbeat; a RUNNING trial without the mark, started
               longer ago than ORPHAN_SECONDS, died between being popped from the
               queue and that heartbeat (`orphaned`). A trial whose recorded
               process ran on this machine and has exited is failed at once,
               without waiting for either (`died_on_this_machine`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Mapping, Sequence

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..host import died_here
from .storage import ORPHAN_SECONDS

FINAL = frozenset({"complete", "rejected", "pruned", "diverged", "oom", "failed"})
RETRYABLE = frozenset({"interrupted", "error", "lost"})
COUNTED = frozenset({"error", "lost"})  # attempts that may mean the candidate itself is broken
PENDING = frozenset({"waiting", "running"})
MAX_ATTEMPTS = 3

#: An item's identity: its parameters (rounded against float noise) and its seed index.
ItemKey = tuple


def orphaned(trials: Sequence[FrozenTrial], *, now: datetime, after_seconds: float) -> list[FrozenTrial]:
    """RUNNING trials without the `alive` mark that started more than `after_seconds` before `now` (I5).

    `now` is local time, like the `datetime_start` the owner wrote; across machines
    their clocks must agree to well within `after_seconds`.
    """
    return [t for t in trials if t.state == TrialState.RUNNING and not t.user_attrs.get("alive")
            and t.datetime_start is not None and (now - t.datetime_start).total_seconds() > after_seconds]


def died_on_this_machine(trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
    """RUNNING trials whose recorded process (user attribute `process`) was of this machine and has exited.

    Known at once, without waiting for the heartbeat to go stale: the common case of a run killed
    (SIGKILL, a crash, a closed terminal) and resumed on the same machine then loses no time.
    """
    return [t for t in trials if t.state == TrialState.RUNNING and died_here(t.user_attrs.get("process"))]


def fail_stale_trials(study: optuna.Study, *, now: datetime | None = None) -> list[int]:
    """Mark RUNNING trials of dead processes as FAIL (the queue then re-queues them); their numbers.

    Optuna fails trials whose heartbeat went stale, but not one whose process died
    before its first heartbeat; those are found by `orphaned` (I5). A trial whose
    process ran on this machine and has exited is failed at once (`died_on_this_machine`).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    failed = []
    trials = study.get_trials(deepcopy=False)
    dead = {t.number: t for t in died_on_this_machine(trials)}
    dead.update((t.number, t) for t in orphaned(trials, now=now or datetime.now(), after_seconds=ORPHAN_SECONDS))
    for t in dead.values():
        study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
        failed.append(t.number)
    return failed


def item_key(params: Mapping[str, float], seed: int) -> ItemKey:
    return tuple(sorted((k, round(float(v), 9)) for k, v in params.items())), int(seed)


ITEM_ATTR = "item"  # the user attribute `ensure_queued` writes: the parameters a queued trial stands for


def params_of(t: FrozenTrial) -> dict:
    """The candidate a trial stands for: its queued parameters, else what it has suggested so far."""
    return dict(t.user_attrs.get(ITEM_ATTR) or _enqueued_params(t) or t.params)


def is_queued(t: FrozenTrial) -> bool:
    """Whether the trial was put in the queue (its parameters fixed), not drawn by a sampler."""
    return ITEM_ATTR in t.user_attrs or bool(_enqueued_params(t))


def _enqueued_params(t: FrozenTrial) -> dict | None:
    """Parameters of a trial queued without our attribute (by a study made before it, or by hand with
    `study.enqueue_trial`): where Optuna keeps them, the one place this module reads Optuna's own record."""
    return t.system_attrs.get("fixed_params")


def key_of(t: FrozenTrial) -> ItemKey:
    return item_key(params_of(t), int(t.user_attrs.get("seed", 0)))


def trial_outcome(t: FrozenTrial) -> str:
    """One of FINAL, RETRYABLE, PENDING or 'stray' (see the module docstring)."""
    if t.user_attrs.get("stray"):
        return "stray"
    if t.state == TrialState.COMPLETE:
        return "complete"
    if t.state in (TrialState.RUNNING, TrialState.WAITING):
        return t.state.name.lower()
    outcome = t.user_attrs.get("outcome")
    if t.state == TrialState.PRUNED:
        return outcome if outcome in ("rejected", "pruned") else "pruned"
    # FAIL. An outcome written just before a Ctrl-C or kill ("complete") must not pass for a result.
    return outcome if outcome in ("diverged", "oom", "failed", "interrupted", "error") else "lost"


@dataclass(frozen=True)
class ItemStatus:
    key: ItemKey
    outcome: str  # a FINAL outcome, "pending", or "open" (it needs a new attempt)
    trial: FrozenTrial | None  # the trial holding the result (the last attempt when it failed)
    attempts: int  # attempts counted against MAX_ATTEMPTS
    reason: str = ""

    @property
    def settled(self) -> bool:
        return self.outcome in FINAL


def item_statuses(trials: Sequence[FrozenTrial]) -> dict[ItemKey, ItemStatus]:
    """Every item that has at least one non-stray trial, with its status (I1)."""
    groups: dict[ItemKey, list[FrozenTrial]] = {}
    for t in sorted(trials, key=lambda t: t.number):
        if trial_outcome(t) != "stray" and params_of(t):
            groups.setdefault(key_of(t), []).append(t)
    return {key: _status(key, group) for key, group in groups.items()}


def _status(key: ItemKey, group: list[FrozenTrial]) -> ItemStatus:
    outcomes = [trial_outcome(t) for t in group]
    counted = [t for t, o in zip(group, outcomes) if o in COUNTED]
    final = next((t for t, o in zip(group, outcomes) if o in FINAL), None)
    if final is not None:
        return ItemStatus(key, trial_outcome(final), final, len(counted), final.user_attrs.get("reason", ""))
    if any(o in PENDING for o in outcomes):
        return ItemStatus(key, "pending", None, len(counted))
    if len(counted) >= MAX_ATTEMPTS:
        last = counted[-1]
        why = last.user_attrs.get("reason") or "its process died (heartbeat went stale)"
        return ItemStatus(key, "failed", last, len(counted), f"failed: gave up after {len(counted)} attempts; "
                                                             f"last: {why}")
    return ItemStatus(key, "open", None, len(counted))


def claim(trials: Sequence[FrozenTrial], number: int) -> bool:
    """May trial `number` evaluate its item? (I2) False when a lower-numbered twin is pending or final,
    or when the item has already used up its attempts."""
    me = next((t for t in trials if t.number == number), None)
    if me is None:
        return False
    key = key_of(me)
    counted = 0
    for t in trials:
        if t.number >= number or key_of(t) != key:
            continue
        outcome = trial_outcome(t)
        if outcome in FINAL or outcome in PENDING:
            return False
        counted += outcome in COUNTED
    return counted < MAX_ATTEMPTS


def earlier_attempts(trials: Sequence[FrozenTrial], number: int) -> int:
    """Counted attempts (error, lost) at the same item before trial `number`."""
    me = next(t for t in trials if t.number == number)
    key = key_of(me)
    return sum(1 for t in trials if t.number < number and key_of(t) == key and trial_outcome(t) in COUNTED)


def ensure_queued(study: optuna.Study, wanted: Iterable[tuple[Mapping[str, float], int]]) -> int:
    """Queue every wanted (params, seed) item that is neither settled nor pending (I3). Returns how many."""
    statuses = item_statuses(study.get_trials(deepcopy=False))
    queued = 0
    for params, seed in wanted:
        key = item_key(params, seed)
        status = statuses.get(key)
        if status is None or status.outcome == "open":
            study.enqueue_trial(dict(params), user_attrs={"seed": int(seed), ITEM_ATTR: dict(params)})
            statuses[key] = ItemStatus(key, "pending", None, status.attempts if status else 0)
            queued += 1
    return queued


def settled_count(statuses: Mapping[ItemKey, ItemStatus], wanted: Iterable[ItemKey]) -> int:
    return sum(1 for key in wanted if key in statuses and statuses[key].settled)
