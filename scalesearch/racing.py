"""Racing: spend extra seeds only where they can change the answer, then state the verdict with a real test.

Every accepted candidate trains once (seed 0). Then, round by round, each
candidate that is not clearly behind the leader gets the next seed, the same
seed index for all (so comparisons are paired), until only the leader is left
or the contenders have `cap` seeds.

A candidate is *clearly behind* the leader when
  - they share at least MIN_TEST_SEEDS seeds and a one-sided paired t-test
    (scipy.stats.ttest_rel) says the leader is better at significance level `significance`; or
  - they share fewer, and its mean trails the leader's by more than `z`
    standard deviations of a one-seed difference (√2·σ, σ pooled from the
    candidates that already have two or more seeds). Before any σ exists only
    the best `first_round` candidates contend.
The runner-up (the best of the rest) is only ever dropped by the t-test, so a
race that ends with one contender always ends with a paired test behind it.

The first racing round gives a second seed to the best `first_round` by mean (the engine: 6): the middle of
the field, not only the top, so the ranking a report prints rests on two seeds where the networks are close
(with one seed each, two runs of the default grid ordered them too differently: Spearman 0.80). After that,
at most `max_contenders` race in a round (the engine: 2, the leader and the runner-up the verdict tests): the
best by mean of those not clearly behind; the others are left at their seeds (`set_aside`) and rejoin if the
means reorder. Why the bound: when many candidates sit within seed noise of each other, seeds spent on the
3rd-best change neither which candidate leads nor whether it is separated from the 2nd. `budget` caps the
extra trainings of the whole race (a rejoining candidate could otherwise keep a near-tied field racing round
after round).
"""

from __future__ import annotations

import math
import statistics
import warnings
from dataclasses import dataclass
from typing import Hashable, Mapping

#: A verdict rests on at least this many paired seeds (2 degrees of freedom): one
#: degree of freedom makes the t-test's p-value meaninglessly unstable.
MIN_TEST_SEEDS = 3

Accuracies = Mapping[int, float]  # seed index -> validation accuracy


@dataclass(frozen=True)
class PairedTest:
    """Is `a` better than `b` on the same seeds? One-sided paired t-test."""

    seeds: tuple[int, ...]
    mean_difference: float  # mean of a - b
    wins: int  # seeds where a > b
    df: int  # degrees of freedom, len(seeds) - 1
    t: float | None  # None also for the sign test (every difference equal: no t statistic)
    p: float | None  # None when there is no test (fewer than 2 seeds, or every difference is zero)
    test: str = "one-sided paired t-test (scipy.stats.ttest_rel)"

    def to_dict(self) -> dict:
        return {"test": self.test, "seeds": list(self.seeds), "mean_difference": self.mean_difference,
                "wins": self.wins, "df": self.df, "t": self.t, "p_value": self.p}


def test_statistic(test: PairedTest) -> str:
    """`t = 1.23`, or what replaced the t-test when every paired difference was equal."""
    return f"t = {test.t:.2f}" if test.t is not None else f"sign test: {test.wins} of {len(test.seeds)} seeds"


_EQUAL_DIFFERENCES = 1e-9  # paired differences closer than this are equal (float rounding of k/N accuracies)


def paired_test(a: Accuracies, b: Accuracies, *, alternative: str = "greater") -> PairedTest:
    """Full-precision accuracies paired by seed index; ValueError when the seed sets differ.

    alternative "greater" (racing: is `a` better?) or "two-sided" (compare: does either win?).
    """
    if set(a) != set(b):
        raise ValueError(f"cannot pair accuracies over different seeds: {sorted(a)} vs {sorted(b)}")
    seeds = tuple(sorted(a))
    diffs = [a[s] - b[s] for s in seeds]
    mean = statistics.fmean(diffs) if diffs else 0.0
    wins = sum(d > 0 for d in diffs)
    name = ("one-sided" if alternative == "greater" else alternative) + " paired t-test (scipy.stats.ttest_rel)"
    if len(seeds) < 2:
        return PairedTest(seeds, mean, wins, 0, None, None, name)
    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "nearly identical data" when differences are equal
        result = stats.ttest_rel([a[s] for s in seeds], [b[s] for s in seeds], alternative=alternative)
    t, p = float(result.statistic), float(result.pvalue)
    if math.isnan(p):  # every difference zero: no evidence either way
        return PairedTest(seeds, mean, wins, len(seeds) - 1, None, None, name)
    if max(diffs) - min(diffs) <= _EQUAL_DIFFERENCES:
        # Every seed moved by the same amount (accuracies are multiples of 1/N: one image more on every seed).
        # The t statistic of a zero spread is undefined; float rounding made it ~1e16 and p ~1e-16, a "verdict"
        # from noise. What such data support is the exact sign test: n wins of n, p = 0.5^n one-sided.
        if abs(mean) <= _EQUAL_DIFFERENCES:
            return PairedTest(seeds, 0.0, 0, len(seeds) - 1, None, None, name)
        p = float(stats.binomtest(wins, len(seeds), 0.5, alternative=alternative).pvalue)
        return PairedTest(seeds, mean, wins, len(seeds) - 1, None, p,
                          "sign test (scipy.stats.binomtest): every paired difference is equal, so the t-test "
                          "is undefined")
    return PairedTest(seeds, mean, wins, len(seeds) - 1, t, p, name)


def _mean(accs: Accuracies) -> float:
    return statistics.fmean(accs.values())


def ranking(results: Mapping[Hashable, Accuracies]) -> list[Hashable]:
    """Candidates by mean accuracy, best first (ties: more seeds first, then a stable order)."""
    return sorted(results, key=lambda c: (-_mean(results[c]), -len(results[c]), str(c)))


def pooled_seed_std(results: Mapping[Hashable, Accuracies]) -> float | None:
    """Within-candidate standard deviation pooled over candidates with two or more seeds."""
    num = den = 0.0
    for accs in results.values():
        if len(accs) >= 2:
            num += statistics.variance(accs.values()) * (len(accs) - 1)
            den += len(accs) - 1
    return math.sqrt(num / den) if den else None


def compare_common(a: Accuracies, b: Accuracies, *, alternative: str = "greater") -> PairedTest:
    """The paired test on the seeds both have (stated in the result's `seeds`)."""
    common = set(a) & set(b)
    return paired_test({s: a[s] for s in common}, {s: b[s] for s in common}, alternative=alternative)


@dataclass(frozen=True)
class RaceRound:
    leader: Hashable | None
    contenders: tuple[Hashable, ...]
    next_items: tuple[tuple[Hashable, int], ...]  # (candidate, seed index) to train next
    done: bool
    set_aside: tuple[Hashable, ...] = ()  # not clearly behind, but beyond max_contenders this round


def not_clearly_behind(results: Mapping[Hashable, Accuracies], *, significance: float = 0.05, z: float = 2.0,
                       first_round: int = 3) -> list[Hashable]:
    """The leader, then every candidate not clearly behind it (the module docstring's rule), best first.

    Racing gives these extra seeds; the refinement round (engine/strategies.py) takes them to φ = 2: the seeds
    could not tell them from the leader, so they are all still answers."""
    order = ranking(results)
    if not order:
        return []
    leader = order[0]
    sigma = pooled_seed_std(results)
    out = [leader]
    for rank, c in enumerate(order[1:], start=1):
        common = set(results[c]) & set(results[leader])
        if len(common) >= MIN_TEST_SEEDS:
            test = compare_common(results[leader], results[c])
            behind = test.p is not None and test.p < significance
        elif rank == 1:
            behind = False  # the runner-up is dropped only by a test
        elif sigma is None:
            behind = rank >= first_round
        else:
            behind = _mean(results[c]) < _mean(results[leader]) - z * math.sqrt(2) * sigma
        if not behind:
            out.append(c)
    return out


def race(results: Mapping[Hashable, Accuracies], *, cap: int, significance: float = 0.05, z: float = 2.0,
         first_round: int = 3, max_contenders: int | None = 3, budget: int | None = None) -> RaceRound:
    """One decision of the race from the completed results (call it when nothing is pending). `budget`: extra
    trainings the race may still add (None: no limit)."""
    contenders = not_clearly_behind(results, significance=significance, z=z, first_round=first_round)
    if not contenders:
        return RaceRound(None, (), (), True)
    leader = contenders[0]
    set_aside: tuple = ()
    first = pooled_seed_std(results) is None  # the first round: the best first_round by mean, before σ is known
    keep = None if max_contenders is None or first else max(2, max_contenders)  # the runner-up always races
    if keep is not None and len(contenders) > keep:
        contenders, set_aside = contenders[:keep], tuple(contenders[keep:])
    if len(contenders) == 1:
        return RaceRound(leader, (leader,), (), True)
    most = max(len(results[c]) for c in contenders)
    target = most if any(len(results[c]) < most for c in contenders) else most + 1
    if target > cap:
        return RaceRound(leader, tuple(contenders), (), True, set_aside)
    items = tuple((c, s) for c in contenders for s in range(target) if s not in results[c])
    if budget is not None:
        items = items[:max(0, budget)]
        if not items:
            return RaceRound(leader, tuple(contenders), (), True, set_aside)
    return RaceRound(leader, tuple(contenders), items, False, set_aside)


#: The racing of one φ: a second seed for the best 6, then the leader and the runner-up up to the cap, at most
#: race_budget extra trainings in all (6 + 2 at a cap of 3 seeds, an even number for two workers). Three
#: contenders for the third seed, as before, made the default grid a training longer than its 6 minutes, and
#: the verdict tests the leader against the runner-up only.
FIRST_ROUND = 6
LATER_CONTENDERS = 2


def race_budget(cap: int, *, first_round: int = FIRST_ROUND, max_contenders: int = LATER_CONTENDERS) -> int:
    """Extra trainings a race at `cap` seeds may add: the first round's second seeds, then max_contenders up to cap."""
    return first_round + max_contenders * max(0, cap - 2)


@dataclass(frozen=True)
class Verdict:
    winner: Hashable
    runner_up: Hashable | None
    test: PairedTest | None
    significance: float  # the level the verdict was tested at
    separated: bool
    text: str  # one line for the console and best.json

    def to_dict(self) -> dict:
        # "alpha": best.json's key for the significance level since the first release.
        return {"alpha": self.significance, "separated": self.separated, "text": self.text,
                **({"test": self.test.to_dict()} if self.test else {"test": None})}


def verdict(results: Mapping[Hashable, Accuracies], *, significance: float = 0.05) -> Verdict | None:
    """The leader against the runner-up, paired on the seeds they share."""
    order = ranking(results)
    if not order:
        return None
    winner = order[0]
    if len(order) == 1:
        return Verdict(winner, None, None, significance, False, "only one candidate completed: nothing to compare")
    runner = order[1]
    test = compare_common(results[winner], results[runner])
    n = len(test.seeds)
    lead = f"the highest mean ahead of the runner-up by {100 * test.mean_difference:+.2f} points on {n} paired seed(s)"
    if test.p is None:
        why = "one seed, no test" if n < 2 else "identical on every seed"
        return Verdict(winner, runner, test, significance, False, f"{lead}: not separated ({why})")
    stats_text = f"{test_statistic(test)}, df = {test.df}, one-sided p = {test.p:.3g}"
    separated = n >= MIN_TEST_SEEDS and test.p < significance
    if separated:
        return Verdict(winner, runner, test, significance, True,
                       f"{lead}: separated at alpha = {significance:g} ({stats_text})")
    short = f"; a verdict needs {MIN_TEST_SEEDS}+ seeds" if n < MIN_TEST_SEEDS else ""
    return Verdict(winner, runner, test, significance, False,
                   f"{lead}: not separated at alpha = {significance:g} ({stats_text}{short})")
