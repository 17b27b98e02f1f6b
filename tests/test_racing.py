"""Racing and the verdict, against scipy's own paired t-test and hand-built seed tables."""

import pytest
from scipy import stats

from scalesearch.racing import MIN_TEST_SEEDS, paired_test, pooled_seed_std, race, verdict


def test_paired_test_is_scipys_one_sided_ttest_rel_at_full_precision():
    a = {0: 0.5123456789, 1: 0.5234567891, 2: 0.5411111111, 3: 0.5300000001}
    b = {0: 0.5023456789, 1: 0.5204567891, 2: 0.5211111111, 3: 0.5310000001}
    test = paired_test(a, b)
    ref = stats.ttest_rel(list(a.values()), list(b.values()), alternative="greater")
    assert test.p == pytest.approx(float(ref.pvalue), rel=1e-12) and test.t == pytest.approx(float(ref.statistic))
    assert test.df == 3 and test.wins == 3 and test.seeds == (0, 1, 2, 3)


def test_paired_test_refuses_mismatched_seeds_instead_of_truncating():
    with pytest.raises(ValueError, match="different seeds"):
        paired_test({0: 0.5, 1: 0.6, 2: 0.7}, {0: 0.4, 1: 0.5})
    with pytest.raises(ValueError):
        paired_test({0: 0.5, 1: 0.6}, {0: 0.4, 2: 0.5})  # same count, other seeds


def test_the_same_difference_on_every_seed_is_a_sign_test_not_a_float_noise_t_test():
    # Accuracies are k/N: one more image right on every seed gives equal differences up to float rounding,
    # where ttest_rel returned t ~ -8.5e15, p ~ 1e-16 (seen in `compare` on 24 validation images).
    n_val = 24
    a = {0: 3 / n_val, 1: 5 / n_val, 2: 4 / n_val, 3: 7 / n_val}
    b = {s: v + 2 / n_val for s, v in a.items()}  # b is 2 images better on every seed
    test = paired_test(b, a)  # one-sided: is b better?
    assert test.p == pytest.approx(0.5 ** 4) and test.t is None and "sign test" in test.test
    two = paired_test(a, b, alternative="two-sided")
    assert two.p == pytest.approx(2 * 0.5 ** 4) and two.wins == 0
    v = verdict({"a": a, "b": b})
    assert v.winner == "b" and not v.separated and "sign test: 4 of 4 seeds" in v.text  # p = 0.0625: not claimed


def test_one_seed_never_claims_a_winner():
    v = verdict({"a": {0: 0.60}, "b": {0: 0.59}})
    assert v.winner == "a" and not v.separated and "one seed" in v.text and v.test.p is None


def test_two_seeds_are_not_enough_for_a_verdict_even_with_a_tiny_p():
    v = verdict({"a": {0: 0.60, 1: 0.70}, "b": {0: 0.50, 1: 0.601}})
    assert not v.separated and f"{MIN_TEST_SEEDS}+ seeds" in v.text


def test_a_clear_leader_is_separated_and_the_numbers_are_stated():
    v = verdict({"a": {0: 0.60, 1: 0.62, 2: 0.61}, "b": {0: 0.50, 1: 0.53, 2: 0.50}})
    assert v.separated and v.test.df == 2 and "p = " in v.text and "df = 2" in v.text


def test_race_first_round_takes_the_top_three_then_uses_pooled_noise():
    one_seed = {f"c{i}": {0: 0.50 + 0.01 * i} for i in range(8)}
    rnd = race(one_seed, cap=4)
    assert set(rnd.contenders) == {"c7", "c6", "c5"} and not rnd.done
    assert set(rnd.next_items) == {("c7", 1), ("c6", 1), ("c5", 1)}
    # After that round the seed noise is known (σ ≈ 0.03): candidates within 2·√2·σ of the leader rejoin.
    results = dict(one_seed, c7={0: 0.57, 1: 0.52}, c6={0: 0.56, 1: 0.61}, c5={0: 0.55, 1: 0.50})
    sigma = pooled_seed_std(results)
    rnd = race(results, cap=4, max_contenders=None)
    leader_mean = 0.585
    expect = {c for c, accs in results.items() if len(accs) == 2 or accs[0] >= leader_mean - 2 * 2**0.5 * sigma}
    assert len(expect) > 3 and set(rnd.contenders) == expect and rnd.leader == "c6"
    assert all(seed == 1 for _, seed in rnd.next_items)  # laggards catch up before anyone gets seed 2
    # By default at most 3 race: the best by mean of those within noise; the rest wait, and say so.
    bounded = race(results, cap=4)
    by_mean = sorted(expect, key=lambda c: -sum(results[c].values()) / len(results[c]))
    assert list(bounded.contenders) == by_mean[:3] and set(bounded.set_aside) == set(by_mean[3:])
    assert {c for c, _ in bounded.next_items} <= set(by_mean[:3])


def test_a_bounded_race_still_ends_with_the_leader_tested_against_the_runner_up():
    """Nine candidates tied within noise (near the data's ceiling): the bounded race trains fewer extra seeds than
    the unbounded one, never races more than 3 at once, and still ends with the leader and the runner-up sharing
    at least 3 seeds, so the verdict rests on a paired test."""
    import random

    def run(seed: int, max_contenders):
        rng = random.Random(seed)
        results = {f"c{i}": {0: 0.96 + rng.uniform(-0.01, 0.01)} for i in range(9)}
        trained = 0
        while not (rnd := race(results, cap=3, max_contenders=max_contenders)).done:
            assert max_contenders is None or len(rnd.contenders) <= max_contenders
            for c, s in rnd.next_items:
                results[c][s] = 0.96 + rng.uniform(-0.01, 0.01)
                trained += 1
        test = verdict(results).test
        assert test is not None and len(test.seeds) >= MIN_TEST_SEEDS
        return trained

    bounded = [run(seed, 3) for seed in range(10)]
    unbounded = [run(seed, None) for seed in range(10)]
    assert all(b <= u for b, u in zip(bounded, unbounded))
    assert sum(bounded) < 0.7 * sum(unbounded)



def test_race_stops_at_the_cap_or_when_only_the_leader_is_left():
    tied = {"a": {s: 0.5 + 0.001 * (s % 2) for s in range(4)}, "b": {s: 0.5 + 0.001 * ((s + 1) % 2) for s in range(4)}}
    assert race(tied, cap=4).done and race(tied, cap=4).next_items == ()
    clear = {"a": {0: 0.9, 1: 0.91, 2: 0.92}, "b": {0: 0.5, 1: 0.52, 2: 0.49}}
    rnd = race(clear, cap=5)
    assert rnd.done and rnd.contenders == ("a",)


def test_the_first_round_races_the_middle_and_the_budget_bounds_the_whole_race():
    """Second seeds go to the best six (the ranking's middle, not only its top); a near-tied field then races two
    at a time; the extra trainings never exceed race_budget (6 + 2 at a cap of 3), however the means reorder."""
    import random

    from scalesearch.racing import race_budget

    one_seed = {f"c{i}": {0: 0.90 + 0.001 * i} for i in range(12)}
    first = race(one_seed, cap=3, first_round=6, budget=race_budget(3))
    assert len(first.contenders) == 6 and {s for _, s in first.next_items} == {1}
    for seed in range(20):
        rng = random.Random(seed)
        results = {f"c{i}": {0: 0.96 + rng.uniform(-0.01, 0.01)} for i in range(12)}
        extra = 0
        while not (rnd := race(results, cap=3, first_round=6, max_contenders=2,
                               budget=race_budget(3) - extra)).done:
            assert len(rnd.contenders) <= (6 if extra == 0 else 2)
            for c, s in rnd.next_items:
                results[c][s] = 0.96 + rng.uniform(-0.01, 0.01)
                extra += 1
        assert extra <= race_budget(3) == 8
