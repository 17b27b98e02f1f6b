"""`compare` end to end on small data: arms at one measured budget, the run's seeds, verdicts from scipy."""

import csv
import json
import math

import numpy as np
import optuna
import pytest
from scipy import stats

from conftest import one_line_error
from scalesearch.comparison.arms import ARM_NAMES, build_arms
from scalesearch.cost import measure_cost
from scalesearch.data import make_synthetic
from scalesearch.proxy import CPU_PROXY
from scalesearch.scaling import Coefficients


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished tiny grid whose winner has two seeds (the compare then adds a third)."""
    from scalesearch.cli import main

    root = tmp_path_factory.mktemp("cmp")
    x, y = make_synthetic(240, 32, seed=7)
    np.savez(root / "tiny.npz", images=x.numpy(), labels=y.numpy())
    out = root / "run"
    with pytest.raises(SystemExit) as exc:
        main(["grid", "--budget", "2x", "--data", str(root / "tiny.npz"), "--out", str(out), "--epochs", "1",
              "--step", "0.2", "--seeds", "2"])
    assert exc.value.code == 0
    return out


def test_compare_from_a_run(cli, run_dir):
    code, out, err = cli("compare", "--from", run_dir, "--format", "json")
    assert code == 0, err
    payload = json.loads(out)
    assert payload == json.loads((run_dir / "compare.json").read_text())
    best = json.loads((run_dir / "best.json").read_text())
    arms = {a["name"]: a for a in payload["arms"]}
    assert list(arms) == list(ARM_NAMES)
    # Same seeds for every arm: the winner's two, plus a third so a test is possible.
    assert payload["seeds"] == [0, 1, 2]
    for a in [*arms.values(), payload["baseline"]]:
        assert a["state"] == "complete" and list(a["seed_accuracies"]) == ["0", "1", "2"]
    # The unscaled proxy is shown as the reference, at ratio 1.
    assert payload["baseline"]["flops_ratio"] == 1.0
    assert payload["baseline"]["resolution"] == CPU_PROXY.resolution
    # Every arm lands on the same measured budget; the ratio is re-measured here on the network it names.
    base = measure_cost("efficientnet", width_mult=CPU_PROXY.width_mult, depth_mult=CPU_PROXY.depth_mult,
                        resolution=CPU_PROXY.resolution, num_classes=best["provenance"]["data"]["num_classes"]).flops
    for a in arms.values():
        flops = measure_cost("efficientnet", width_mult=a["width_mult"], depth_mult=a["depth_mult"],
                             resolution=a["resolution"], num_classes=best["provenance"]["data"]["num_classes"]).flops
        assert a["flops_ratio"] == pytest.approx(flops / base)
        assert a["within_tolerance"] == (1.8 <= a["flops_ratio"] <= 2.2)
    # Single dimensions really are single: the other two stay the proxy's (the resolution only where the
    # arm says it had to trim it to meet the budget).
    assert arms["depth only"]["width_mult"] == CPU_PROXY.width_mult
    assert arms["width only"]["depth_mult"] == CPU_PROXY.depth_mult
    for name in ("depth only", "width only"):
        assert (arms[name]["resolution"] == CPU_PROXY.resolution) == (arms[name]["note"] == "")
    assert arms["resolution only"]["depth_mult"] == CPU_PROXY.depth_mult
    assert arms["resolution only"]["width_mult"] == CPU_PROXY.width_mult
    # At φ = 1 the compound arm is the run's winner, and the seeds the run trained are its numbers.
    comp = arms["compound"]
    assert (comp["depth_mult"], comp["width_mult"], comp["resolution"]) == (
        best["depth_mult"], best["width_mult"], best["resolution"])
    for s, acc in best["seed_accuracies"].items():
        assert comp["seed_accuracies"][s] == acc
    # Verdicts agree with scipy on the numbers shown.
    for name in ARM_NAMES[1:]:
        a = arms[name]
        seeds = sorted(a["seed_accuracies"])
        ref = stats.ttest_rel([comp["seed_accuracies"][s] for s in seeds], [a["seed_accuracies"][s] for s in seeds])
        test = a["verdict"]["test"]
        if np.isnan(ref.pvalue):
            assert test["p_value"] is None
            continue
        assert test["p_value"] == pytest.approx(ref.pvalue) and test["df"] == 2
        if ref.pvalue >= 0.05:
            assert a["verdict"]["better"] is None and "no significant difference" in a["verdict"]["text"]
        else:
            assert a["verdict"]["better"] == ("compound" if ref.statistic > 0 else name)
    # The study lives in the run's storage: read back through Optuna.
    study = optuna.load_study(study_name=f"{best['study']}-compare", storage=f"sqlite:///{run_dir / 'study.db'}")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert sorted((t.params["arm"], t.user_attrs["seed"]) for t in done) == [(i, s) for i in range(5)
                                                                             for s in range(3)]
    reused = [t for t in done if "reused" in t.user_attrs.get("reason", "")]
    assert sorted(t.user_attrs["seed"] for t in reused) == [0, 1] and {t.params["arm"] for t in reused} == {0}
    # The console says whose result a reused trial shows, where a trained one shows its time.
    for t in reused:
        line = next(l for l in err.splitlines() if l.startswith(f"trial {t.number:>3} compound"))
        assert line.rstrip().endswith(f"seed {t.user_attrs['seed']} acc {t.value:.4f} ({t.user_attrs['reason']})"), line
    # The files: CSV with every arm, PNG and PDF figures.
    with open(run_dir / "compare.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows] == list(ARM_NAMES)
    assert float(rows[1]["accuracy"]) == pytest.approx(arms["depth only"]["accuracy"])
    assert (run_dir / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (run_dir / "compare.pdf").read_bytes()[:5] == b"%PDF-"

    # Resume: the same command trains nothing more.
    code, _, err = cli("compare", "--from", run_dir, "--format", "json")
    assert code == 0, err
    again = optuna.load_study(study_name=f"{best['study']}-compare", storage=f"sqlite:///{run_dir / 'study.db'}")
    assert len(again.trials) == len(study.trials)


@pytest.mark.parametrize("args, says", [
    (["--from", "/nonexistent/run"], "no best.json"),
    (["--phi", "0"], "--phi must be > 0"),
    (["--seeds", "0"], "--seeds must be >= 1"),
    (["--format", "xml"], "unknown --format"),
    (["--budget", "0"], "budget must be > 0"),
    (["--budget", "1x"], "budget 1x"),
    (["--cost", "joules"], "unknown --cost"),
    (["--cost", "latency", "--latency-device", "tpu"], "--latency-device"),
])
def test_compare_bad_input_is_one_line(cli, in_tmp, args, says):
    code, _, err = cli("compare", *args)
    assert code == 2 and says in one_line_error(err)


def test_compare_from_a_run_refuses_options_the_run_fixed(cli, run_dir):
    code, _, err = cli("compare", "--from", run_dir, "--budget", "3x")
    assert code == 2 and "drop --budget" in one_line_error(err)


def test_compare_refuses_an_unfinished_run(cli, tmp_path, run_dir):
    best = json.loads((run_dir / "best.json").read_text())
    (tmp_path / "best.json").write_text(json.dumps({**best, "complete": False}))
    code, _, err = cli("compare", "--from", tmp_path)
    assert code == 2 and "not complete" in one_line_error(err)


def _reference(metric=None):
    from scalesearch.budget import Reference
    from scalesearch.metrics import FLOPS

    return Reference.measure("efficientnet", depth_mult=CPU_PROXY.depth_mult, width_mult=CPU_PROXY.width_mult,
                             resolution=CPU_PROXY.resolution, num_classes=6, metric=metric or FLOPS)


def test_arms_at_the_same_activations_are_measured_in_activations():
    """--cost activations: every arm is brought to 2x the proxy's activations (a second count, torch's dispatch
    of conv and addmm outputs, agrees), not to 2x its FLOPs: the width-only arm widens further than at 2x FLOPs."""
    from scalesearch.metrics import CostMetric

    ref = _reference(CostMetric(name="activations"))
    arms = build_arms(ref, CPU_PROXY, Coefficients(1.2, 1.1, 1.15), phi=1, budget=2.0, tolerance=0.1)
    flop_arms = build_arms(_reference(), CPU_PROXY, Coefficients(1.2, 1.1, 1.15), phi=1, budget=2.0, tolerance=0.1)
    for a in arms:
        acts = measure_cost("efficientnet", width_mult=a.built.width_mult, depth_mult=a.built.depth_mult,
                            resolution=a.built.resolution, num_classes=6).activations
        assert a.built.cost_ratio == pytest.approx(acts / ref.value)
        assert a.within_tolerance == (1.8 <= a.built.cost_ratio <= 2.2)
    assert arms[2].built.width_mult > flop_arms[2].built.width_mult * 1.2


def test_arms_at_phi_2_aim_at_the_budget_squared():
    proxy = CPU_PROXY
    base = measure_cost("efficientnet", width_mult=proxy.width_mult, depth_mult=proxy.depth_mult,
                        resolution=proxy.resolution, num_classes=6).flops
    arms = build_arms(_reference(), proxy, Coefficients(1.2, 1.1, 1.15), phi=2, budget=1.5, tolerance=0.1)
    assert [a.name for a in arms] == list(ARM_NAMES)
    for a in arms:
        assert a.target_ratio == 2.25
        flops = measure_cost("efficientnet", width_mult=a.built.width_mult, depth_mult=a.built.depth_mult,
                             resolution=a.built.resolution, num_classes=6).flops
        assert a.built.flops_ratio == pytest.approx(flops / base)
        assert a.within_tolerance == (2.025 <= a.built.flops_ratio <= 2.475)
    # Resolution only: no neighbouring pixel count comes closer to 2.25x (stride flooring makes FLOPs jump).
    res = arms[3].built.resolution
    assert res > proxy.resolution and arms[1].built.depth_mult > proxy.depth_mult

    def off(r):
        f = measure_cost("efficientnet", width_mult=proxy.width_mult, depth_mult=proxy.depth_mult, resolution=r,
                         num_classes=6).flops
        return abs(math.log(f / base / 2.25))

    assert off(res) <= min(off(res - 1), off(res + 1))


def test_compare_without_a_run_uses_the_papers_direction_on_the_budget(cli, in_tmp):
    x, y = make_synthetic(120, 32, seed=3)
    np.savez(in_tmp / "t.npz", images=x.numpy(), labels=y.numpy())
    code, out, err = cli("compare", "--budget", "2x", "--data", in_tmp / "t.npz", "--epochs", "1", "--seeds", "1",
                         "--format", "json")
    assert code == 0, err
    payload = json.loads(out)
    c = payload["compound"]
    assert c["alpha"] * c["beta"] ** 2 * c["gamma"] ** 2 == pytest.approx(2.0)
    # The paper's direction: the same ratios of logarithms as (1.2, 1.1, 1.15).
    assert math.log(c["alpha"]) / math.log(c["beta"]) == pytest.approx(math.log(1.2) / math.log(1.1))
    assert (in_tmp / "runs" / "compare-2x" / "compare.json").is_file()
    # One seed: numbers, but no verdict is claimed.
    for arm in payload["arms"][1:]:
        assert arm["verdict"]["better"] is None
        assert "no verdict" in arm["verdict"]["text"] or "no significant" in arm["verdict"]["text"]


def test_default_arms_land_inside_the_tolerance_or_say_why_not():
    """The CPU proxy at 2x: pure depth scaling jumps past 2.2x, so its resolution is trimmed (as little as it
    takes), and says so; pure
    resolution scaling has no size inside the tolerance, and says that."""
    proxy = CPU_PROXY
    base = measure_cost("efficientnet", width_mult=proxy.width_mult, depth_mult=proxy.depth_mult,
                        resolution=proxy.resolution, num_classes=6).flops
    arms = {a.name: a for a in build_arms(_reference(), proxy, Coefficients(1.0, 1.15, 2 ** 0.5 / 1.15), phi=1,
                                          budget=2.0, tolerance=0.1)}
    assert all(arms[name].within_tolerance for name in ("compound", "depth only", "width only"))
    # Resolution alone cannot land at 2x from 42 px: the last stages' feature maps step between 64 and 65 px.
    res = arms["resolution only"]
    assert not res.within_tolerance and res.built.resolution == 64
    r64, r65 = (measure_cost("efficientnet", width_mult=proxy.width_mult, depth_mult=proxy.depth_mult, resolution=r,
                             num_classes=6).flops / base for r in (64, 65))
    assert r64 < 1.8 and r65 > 2.2
    assert res.note == f"no resolution lands within the tolerance: 64px measures {r64:.3f}x, 65px {r65:.3f}x in flops"
    depth = arms["depth only"]
    pure = measure_cost("efficientnet", width_mult=proxy.width_mult, depth_mult=depth.built.depth_mult,
                        resolution=proxy.resolution, num_classes=6).flops / base
    assert not 1.8 <= pure <= 2.2  # the reason for the trim, measured here
    assert depth.built.resolution < proxy.resolution and f"resolution {proxy.resolution} ->" in depth.note
    # Trimmed as little as possible: the first size below the proxy's inside 2x +-10%, not the one nearest 2x.
    # (Defect: the arm went to 33 px, 2.002x, though 40 px measures 2.122x; at 33 px the fine cue was gone.)
    def depth_ratio(r):
        return measure_cost("efficientnet", width_mult=proxy.width_mult, depth_mult=depth.built.depth_mult,
                            resolution=r, num_classes=6).flops / base

    assert 1.8 <= depth_ratio(depth.built.resolution) <= 2.2
    assert all(not 1.8 <= depth_ratio(r) <= 2.2 for r in range(depth.built.resolution + 1, proxy.resolution))
    assert arms["width only"].note == "" and arms["width only"].built.resolution == proxy.resolution


def test_compare_at_a_fractional_phi_keeps_it_in_the_file_names(cli, run_dir):
    """Defect: Path.with_suffix cut 'compare-phi0.5' to 'compare-phi0.json' (and .csv, .png, .pdf)."""
    code, _, err = cli("compare", "--from", run_dir, "--phi", "0.5", "--seeds", "1")
    assert code == 0, err
    for suffix in (".json", ".csv", ".png", ".pdf"):
        assert (run_dir / f"compare-phi0.5{suffix}").exists(), suffix
    assert not any((run_dir / f"compare-phi0{suffix}").exists() for suffix in (".json", ".csv", ".png", ".pdf"))
    assert json.loads((run_dir / "compare-phi0.5.json").read_text())["phi"] == 0.5
