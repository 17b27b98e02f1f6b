"""Networks, not grid labels: grouping, intervals, the point rule, and the refinement round at φ = 2.

The engine runs on an in-memory study with a fake experiment (milliseconds per test); what it builds is
given by a rounding rule like EfficientNet's (depth rounded up), so several α build one network at φ = 1
and split again at φ = 2, as they do on the real proxy (checked against the real builder at the end).
"""

import math
from types import SimpleNamespace

import optuna
import pytest

from scalesearch.config import SearchConfig
from scalesearch.engine import queue
from scalesearch.engine.networks import (POINT_RULE, best_payload, decide, group_networks, plan_refinement)
from scalesearch.engine.results import TRIAL_COLUMNS, candidate_records, rows_to_csv
from scalesearch.engine.run import Worker
from scalesearch.scaling import coefficients_from_intervals, grid_candidates

optuna.logging.set_verbosity(optuna.logging.ERROR)


@pytest.fixture
def study():
    return optuna.create_study(storage=optuna.storages.RDBStorage("sqlite:///:memory:"), direction="maximize")


def blocks(alpha: float, phi: int) -> int:
    """Blocks a depth-0.5 proxy with 6 repeats builds at α^φ: rounded up, so α 1.05-1.3 build one at φ = 1."""
    return math.ceil(6 * 0.5 * alpha**phi - 1e-9)


class RoundingExperiment:
    """Accuracy of a network from its blocks and β; with `tied`, the two best networks at φ = 1 are equal on
    every seed (no seed can separate them), and φ = 2 ranks them."""

    def __init__(self, *, refine=True, seed_cap=3, tied=True):
        self.proxy = SimpleNamespace(seed_cap=seed_cap, train=SimpleNamespace(epochs=2))
        self.refine, self.tied = refine, tied
        self.calls = []

    def structure_key(self, member):
        c = member.coefficients
        return member.phi, blocks(c.alpha, member.phi), round(c.beta**member.phi, 6)

    def evaluate(self, trial, member, seed):
        c, phi = member.coefficients, member.phi
        n = blocks(c.alpha, phi)
        self.calls.append((round(c.alpha, 6), round(c.beta, 6), phi, seed))
        for key, value in dict(flops=1, depth_mult=n, width_mult=c.beta**phi, resolution=40 * phi,
                               network=f"{n} blocks, width {c.beta**phi:.4f}").items():
            trial.set_user_attr(key, value)
        if phi == 1:
            # The deep bucket (4 blocks: α 1.05-1.3) and the unscaled network tie; width costs accuracy.
            base = 0.9 if n in (3, 4) else 0.7
            return base - (c.beta - 1) + (0.0 if self.tied else 0.01 * (n == 4)) + 0.001 * seed
        # At φ = 2 the 5-block members (α 1.15-1.25 squared) are best, clearly, on every seed.
        return {5: 0.95, 4: 0.85, 6: 0.8}.get(n, 0.7) - (c.beta - 1) + 0.002 * seed * (1 + n)


def grid(tmp_path, **kw):
    return SearchConfig(mode="grid", budget=2.0, step=0.05, out=tmp_path, **kw)


def run(cfg, exp, study):
    Worker(cfg, exp, study).work(lambda *_: None, lambda _: None)
    return candidate_records(study.get_trials(), cfg.budget)


def test_points_that_build_one_network_share_an_id_an_interval_and_one_training(study, tmp_path):
    exp = RoundingExperiment(refine=False)
    records = run(grid(tmp_path, seeds=1), exp, study)
    networks = group_networks(records)
    # α 1.05..1.30 -> 4 blocks; 1.35, 1.40 -> 5; α 1 -> 3; β 1.0 .. 1.15: 4 widths.
    assert len(networks) == 3 * 4
    deep = next(n for n in networks if n.architecture.startswith("4 blocks") and n.beta_range == (1.0, 1.0))
    assert deep.alpha_range == (1.05, 1.3) and len(deep.points) == 6
    assert {r.network for r in deep.points} == {deep.network}
    assert len({r.network for r in records}) == len(networks)
    # trials.csv: one row per grid point, each naming its network and φ.
    header, *rows = rows_to_csv(records).splitlines()
    assert header.split(",")[:4] == ["trial", "state", "network", "phi"] and len(rows) == 36
    assert TRIAL_COLUMNS[2:4] == ("network", "phi")


def test_the_reported_point_is_the_intervals_centre_and_obeys_the_budget_law_exactly():
    c = coefficients_from_intervals((1.05, 1.3), (1.0, 1.0), 2.0)
    assert c.alpha == pytest.approx(math.sqrt(1.05 * 1.3)) and c.beta == 1.0
    assert c.alpha * c.beta**2 * c.gamma**2 == pytest.approx(2.0, abs=1e-12)


def test_without_refinement_the_answer_is_a_network_and_its_interval_at_phi_1(study, tmp_path):
    exp = RoundingExperiment(refine=False, tied=False)
    records = run(grid(tmp_path, seeds=1), exp, study)
    best = best_payload(records, budget=2.0, tolerance=0.1, significance=0.05, complete=True, extra={})
    assert best["decided_at_phi"] == 1 and best["alpha_range"] == [1.05, 1.3] and best["beta_range"] == [1.0, 1.0]
    assert best["alpha"] == pytest.approx(math.sqrt(1.05 * 1.3))  # not the first label met (1.05)
    assert best["alpha"] * best["beta"] ** 2 * best["gamma"] ** 2 == pytest.approx(2.0)
    assert best["point_rule"] == POINT_RULE and best["networks"] == 12
    assert not best["refinement"]["ran"] and best["refinement"]["enabled"] is False
    assert any("grid step" in r for r in best["refinement"]["reasons"])  # α spans 5 steps: it says what it left


def test_refinement_trains_the_contenders_points_at_phi_2_once_each_and_decides_there(study, tmp_path):
    exp = RoundingExperiment(refine=True, tied=True)
    records = run(grid(tmp_path, seeds="auto"), exp, study)
    phi2 = [c for c in exp.calls if c[2] == 2]
    assert len(phi2) == len(set(phi2))  # exactly once per (point, seed)
    # The tie at φ = 1 (3-block α = 1 against the 4-block bucket, β = 1) goes to φ = 2 with every point of both.
    first_seed = {(a, b) for a, b, phi, s in phi2 if s == 0}
    assert {(1.0, 1.0)} | {(a, 1.0) for a in (1.05, 1.1, 1.15, 1.2, 1.25, 1.3)} <= first_seed
    best = best_payload(records, budget=2.0, tolerance=0.1, significance=0.05, complete=True, extra={},
                        refine=True)
    assert best["decided_at_phi"] == 2 and best["refinement"]["ran"]
    # At φ = 2 the 4-block bucket split: α² of 1.2 and 1.25 build 5 blocks (1.05-1.15: 4; 1.3: 6), which win.
    assert best["alpha_range"] == [1.2, 1.25] and best["alpha_range"][1] - best["alpha_range"][0] <= 0.10 + 1e-9
    assert best["separated"] and best["seeds"] >= 3
    assert "N" in best["refinement"]["phi1_network"] and best["refinement"]["phi1_answer"].startswith("winner")


def test_an_interrupted_refinement_resumes_exactly_once(study, tmp_path):
    class Interrupting(RoundingExperiment):
        def evaluate(self, trial, member, seed):
            if member.phi == 2 and not getattr(self, "fired", False):
                self.fired = True
                raise KeyboardInterrupt
            return super().evaluate(trial, member, seed)

    cfg = grid(tmp_path, seeds="auto")
    exp = Interrupting(refine=True)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, exp, study)
    assert any(c[2] == 2 for c in exp.calls) is False  # the interrupted one never reached its result
    run(cfg, exp, study)  # the same command again
    trained = [c for c in exp.calls if c[2] == 2]
    assert trained and len(trained) == len(set(trained))
    statuses = queue.item_statuses(study.get_trials())
    assert all(s.settled for s in statuses.values())


def test_refinement_is_planned_from_the_results_alone(study, tmp_path):
    run(grid(tmp_path, seeds=1), RoundingExperiment(refine=False), study)
    networks = group_networks(candidate_records(study.get_trials(), 2.0))
    plan = plan_refinement(networks, budget=2.0)
    assert plan.needed and plan.networks[0] is decide(networks, budget=2.0, phi=1).winner
    assert len(plan.networks) <= 3
    assert {p.trial for p in plan.points()} >= set(plan.networks[0].trials)


def test_grid_points_of_the_real_proxy_build_fewer_networks_at_phi_1_than_at_phi_2():
    """The premise, on the real builder: ceil rounding merges α 1.05-1.30 at the CPU proxy's depth at φ = 1 and
    splits them at φ = 2 (13 blocks for α 1.05-1.15, 15 for 1.2, 16 for 1.25-1.3)."""
    from scalesearch.families.efficientnet import efficientnet_shape

    alphas = [c.alpha for c in grid_candidates(2.0, 0.05) if c.beta == 1.0 and 1.0 < c.alpha <= 1.3]
    at = {phi: {a: sum(efficientnet_shape(width_mult=0.25, depth_mult=0.5 * a**phi).repeats) for a in alphas}
          for phi in (1, 2)}
    assert set(at[1].values()) == {13}
    assert at[2] == {1.05: 13, 1.1: 13, 1.15: 13, 1.2: 15, 1.25: 16, 1.3: 16}


def test_networks_the_seeds_cannot_separate_answer_with_the_cheapest(study, tmp_path):
    """The one-standard-error rule: equally good networks must not be picked by noise; the cheapest of those a
    paired test on 3+ seeds cannot separate from the highest mean answers, and the highest mean is named."""
    from scalesearch.engine.results import CandidateRecord

    def net(trial, beta, cost, accs):
        r = CandidateRecord(trial, "complete", 1.0, beta, 1.4, (("beta", beta),), cost_ratio=cost,
                            architecture=f"width {beta}", network=f"N{trial + 1}")
        r.seed_accuracies = dict(enumerate(accs))
        return r

    records = [net(0, 1.0, 1.71, [0.990, 0.993, 0.987]), net(1, 1.1, 1.78, [0.993, 0.991, 0.994]),
               net(2, 1.05, 1.72, [0.98]),  # within noise, but one seed: not tested, so it cannot stand in
               net(3, 1.15, 2.0, [0.90, 0.91, 0.89])]  # clearly behind
    answer = decide(group_networks(records), budget=2.0)
    assert not answer.separated and answer.top.network == "N2" and answer.winner.network == "N1"
    assert {n.network for n in answer.unseparated} == {"N2", "N3"}
    assert "cheapest" in answer.choice and "N2" in answer.choice
    # Separated, the highest mean answers whatever it costs.
    records[0].seed_accuracies = {0: 0.95, 1: 0.951, 2: 0.949}
    answer = decide(group_networks(records), budget=2.0)
    assert answer.winner.network == "N2" and answer.top is None


def test_a_sampler_study_refines_its_drawn_points_without_drawing_more(study, tmp_path):
    """`search --refine`: the φ = 2 members of drawn points are items of their own, not new draws (--trials holds),
    and each is trained once."""
    cfg = SearchConfig(mode="search", budget=2.0, trials=8, sampler="random", out=tmp_path, seeds=1)
    exp = RoundingExperiment(refine=True)
    records = run(cfg, exp, study)
    drawn = [r for r in records if r.phi == 1]
    refined = [r for r in records if r.phi == 2]
    assert len(drawn) == 8 and refined  # one seed separates nothing: the contenders go to φ = 2
    assert {r.params_key for r in refined} <= {tuple(sorted((*r.params_key, ("phi", 2)))) for r in drawn}
    phi2 = [c for c in exp.calls if c[2] == 2]
    assert len(phi2) == len(set(phi2)) == len(refined)
    best = best_payload(records, budget=2.0, tolerance=0.1, significance=0.05, complete=True, extra={}, refine=True)
    assert best["decided_at_phi"] == 2


def test_the_resolution_only_network_always_goes_to_phi_2_when_the_seeds_could_not_rule_it_out():
    """Four networks tied with the winner: three go on, and the resolution-only one (α = β = 1) too, though it
    ranks fourth: whether more pixels still pay at φ = 2 is the question it leaves."""
    from scalesearch.engine.results import CandidateRecord

    def net(trial, alpha, beta, acc):
        r = CandidateRecord(trial, "complete", alpha, beta, 1.2, (("a", alpha), ("b", beta)), cost_ratio=2.0,
                            architecture=f"{alpha}/{beta}", network=f"N{trial + 1}")
        r.seed_accuracies = {0: acc, 1: acc - 0.02 * (trial % 2) + 0.01}  # two seeds: a seed noise is known
        return r

    records = [net(0, 1.05, 1.05, 0.95), net(1, 1.1, 1.0, 0.949), net(2, 1.0, 1.1, 0.948), net(3, 1.0, 1.0, 0.947)]
    plan = plan_refinement(group_networks(records), budget=2.0)  # all within 2√2σ of the leader
    assert [n.network for n in plan.networks] == ["N1", "N3", "N2", "N4"] and not plan.left_out  # N4: 4th by mean
