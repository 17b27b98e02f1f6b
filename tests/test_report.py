"""`scalesearch report` on one tiny real run: every number against Optuna's own read-back, every format,
the LaTeX through pdflatex, the figures as files a reader opens, and bad input as one line."""

import csv
import io
import json
import shutil
import statistics
import subprocess
from html.parser import HTMLParser

import numpy as np
import optuna
import pytest
from scipy import stats

from conftest import one_line_error
from scalesearch.data import make_synthetic

# A data file name full of what LaTeX, Markdown and HTML treat specially: the report must escape it.
DATA_NAME = "tiny_<i>%#&$~^"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A finished tiny grid (2 fixed seeds; two points under budget, four rejected by the parameter cap), then a
    one-seed `compare` in it."""
    from scalesearch.cli import main

    root = tmp_path_factory.mktemp("report")
    x, y = make_synthetic(180, 32, seed=7)
    data = root / f"{DATA_NAME}.npz"
    np.savez(data, images=x.numpy(), labels=y.numpy())
    out = root / "run_1%"
    for args in (["grid", "--budget", "2x", "--data", str(data), "--out", str(out), "--epochs", "1", "--seeds", "2",
                  "--step", "0.1", "--max-params", "300k"],
                 ["compare", "--from", str(out), "--seeds", "1"]):
        with pytest.raises(SystemExit) as exc:
            main(args)
        assert exc.value.code == 0, args
    return out


@pytest.fixture(scope="module")
def storage_view(run_dir):
    """The study as Optuna itself reads it back: no scalesearch code between the file and these numbers."""
    best = json.loads((run_dir / "best.json").read_text())
    study = optuna.load_study(study_name=best["study"], storage=f"sqlite:///{run_dir / 'study.db'}")
    points = {}  # (alpha, beta) -> {"trials": [...], "seeds": {seed: value}}
    for t in sorted(study.trials, key=lambda t: t.number):
        if t.user_attrs.get("stray"):
            continue
        p = points.setdefault((t.params["alpha"], t.params["beta"]), {"trials": [], "seeds": {}})
        p["trials"].append(t)
        if t.state == optuna.trial.TrialState.COMPLETE:
            p["seeds"][t.user_attrs["seed"]] = t.value
    return study, points


def _report_json(cli, run_dir):
    code, out, err = cli("report", "--from", run_dir, "--format", "json", "--no-figures")
    assert code == 0, err
    return json.loads(out)


def storage_networks(points):
    """Trained points grouped by the network their first trial recorded: what the ranking must list, one each."""
    out = {}
    for key, p in sorted(points.items(), key=lambda kv: kv[1]["trials"][0].number):
        if p["seeds"]:
            out.setdefault(p["trials"][0].user_attrs["network"], []).append((key, p))
    return out


def test_json_numbers_are_the_storages(cli, run_dir, storage_view):
    _, points = storage_view
    report = _report_json(cli, run_dir)
    networks = storage_networks(points)
    # One row per distinct network, not per grid point: the points that build it are listed with it.
    assert len(report["ranking"]) == len(networks) < len([p for p in points.values() if p["seeds"]])
    untrained = [k for k, p in points.items() if not p["seeds"]]
    assert len(report["not_trained"]) == len(untrained)
    for cand in report["ranking"]:
        members = next(m for m in networks.values() if m[0][1]["trials"][0].number == cand["trial"])
        first = members[0][1]["trials"][0]
        assert cand["trials"] == [p["trials"][0].number for _, p in members] and cand["points"] == len(members)
        assert cand["alpha_range"] == [min(k[0] for k, _ in members), max(k[0] for k, _ in members)]
        assert cand["beta_range"] == [min(k[1] for k, _ in members), max(k[1] for k, _ in members)]
        for key in ("flops", "flops_ratio", "params", "resolution", "depth_mult", "width_mult", "alpha_eff",
                    "beta_eff", "gamma_eff"):
            assert cand[key] == first.user_attrs[key], key
        values = members[0][1]["seeds"]
        assert all(p["seeds"] == values for _, p in members)  # twins reuse the network's results
        assert {int(s): a for s, a in cand["seed_accuracies"].items()} == values
        assert cand["seeds"] == len(values) == 2
        assert cand["accuracy"] == pytest.approx(float(np.mean(list(values.values()))), rel=1e-12)
        assert cand["accuracy_std"] == pytest.approx(float(np.std(list(values.values()), ddof=1)), abs=1e-12)
    for cand in report["not_trained"]:
        point = points[(cand["alpha"], cand["beta"])]
        assert point["seeds"] == {} and cand["accuracy"] is None
        assert cand["reason"] == point["trials"][0].user_attrs["reason"]
    # The rejected point is listed as such, with the reason the trial recorded.
    rejected = [c for c in report["not_trained"] if c["state"] == "rejected"]
    assert len(rejected) == 4 and all("over the --max-params cap of 300,000" in c["reason"] for c in rejected)
    assert all(c["params"] > 300_000 for c in rejected)
    # Points no resolution lands within 2x ±10% are trained below it and marked, not thrown away.
    under = [c for c in report["ranking"] if c["budget_fit"].startswith("under budget")]
    assert len(under) == 2 and all(c["cost_ratio"] < 1.8 and c["state"] == "complete" for c in under)
    assert all(points[(c["alpha"], c["beta"])]["trials"][0].state == optuna.trial.TrialState.PRUNED for c in rejected)


def test_winner_and_verdict_follow_from_the_storage(cli, run_dir, storage_view):
    _, points = storage_view
    report = _report_json(cli, run_dir)
    w = report["winner"]
    networks = storage_networks(points)
    means = {net: statistics.fmean(m[0][1]["seeds"].values()) for net, m in networks.items()}
    assert w["accuracy"] == pytest.approx(max(means.values()), rel=1e-12)
    assert report["ranking"][0]["trial"] == w["trial"] and report["ranking"][0]["rank"] == 1
    # Ranks follow mean accuracy.
    accs = [c["accuracy"] for c in report["ranking"]]
    assert accs == sorted(accs, reverse=True)
    # The winner's interval is its network's grid points; the reported point is its centre, on the budget law.
    winner_net = next(net for net, m in networks.items() if m[0][1]["trials"][0].number == w["trial"])
    keys = [k for k, _ in networks[winner_net]]
    assert w["alpha_range"] == [min(a for a, _ in keys), max(a for a, _ in keys)]
    assert w["beta_range"] == [min(b for _, b in keys), max(b for _, b in keys)]
    assert w["alpha"] == pytest.approx((w["alpha_range"][0] * w["alpha_range"][1]) ** 0.5)
    assert w["alpha"] * w["beta"] ** 2 * w["gamma"] ** 2 == pytest.approx(2.0)
    assert w["decided_at_phi"] == 1 and w["networks"] == len({p["trials"][0].user_attrs["network"]
                                                              for p in points.values()})
    # The runner-up is the best *other network*, and the p-value is scipy's on their paired seeds.
    c = w["comparison"]
    others = [m for net, m in means.items() if net != winner_net]
    assert c["runner_up_accuracy"] == pytest.approx(max(others), rel=1e-12)
    runner = points[(c["runner_up"]["alpha"], c["runner_up"]["beta"])]["seeds"]
    mine = networks[winner_net][0][1]["seeds"]
    ref = stats.ttest_rel([mine[s] for s in sorted(mine)], [runner[s] for s in sorted(mine)], alternative="greater")
    test = w["verdict"]["test"]
    if np.isnan(ref.pvalue):
        assert test["p_value"] is None
    else:
        assert test["p_value"] == pytest.approx(ref.pvalue) and test["df"] == 1
    assert w["verdict"]["separated"] is False  # two seeds never separate (a verdict needs 3)
    assert w["unseparated"] and w["unseparated"][0]["network"] == c["runner_up_network"]  # named, not hidden
    # What best.json says agrees with the storage.
    best = json.loads((run_dir / "best.json").read_text())
    assert (best["trial"], best["accuracy"], best["alpha_range"]) == (w["trial"], w["accuracy"], w["alpha_range"])
    assert report["provenance"]["data"]["fingerprint"] == best["provenance"]["data"]["fingerprint"]
    assert "multiply-adds" in report["flop_convention"]
    # compare.json, written by `scalesearch compare`, is included with its verdicts.
    [cmp] = report["comparisons"]
    assert cmp == {**json.loads((run_dir / "compare.json").read_text()), "file": "compare.json"}


def test_csv_numbers_are_the_storages(cli, run_dir, storage_view, tmp_path):
    _, points = storage_view
    out = tmp_path / "r.csv"
    code, stdout, err = cli("report", "--from", run_dir, "--out", out, "--no-figures")  # csv from the suffix
    assert code == 0 and stdout == "", err
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    networks = storage_networks(points)
    ranked = [r for r in rows if r["rank"]]
    assert len(ranked) == len(networks) and ranked[0]["rank"] == "1"
    assert len(rows) == len(networks) + len([p for p in points.values() if not p["seeds"]])
    for row in rows:
        point = points[(float(row["alpha"]), float(row["beta"]))]
        assert int(row["trial"]) == point["trials"][0].number
        assert float(row["flops_ratio"]) == point["trials"][0].user_attrs["flops_ratio"]
        assert int(row["flops"]) == point["trials"][0].user_attrs["flops"]
        if row["state"] == "complete":
            members = networks[point["trials"][0].user_attrs["network"]]
            assert row["trials"].split() == [str(p["trials"][0].number) for _, p in members]
            assert float(row["alpha_range_low"]) == min(k[0] for k, _ in members)
            assert float(row["beta_range_high"]) == max(k[1] for k, _ in members)
            # Full precision: the CSV's text parses back to the study's very floats.
            assert float(row["accuracy"]) == statistics.fmean(point["seeds"].values())
            pairs = dict(p.split(":") for p in row["seed_accuracies"].split())
            assert {int(s): float(a) for s, a in pairs.items()} == point["seeds"]
        else:
            assert row["rank"] == "" and row["reason"]


class _Text(HTMLParser):
    def __init__(self):
        super().__init__()
        self.text, self.tags = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text.append(data)


def test_human_formats_name_the_winner_and_the_rejected(cli, run_dir, tmp_path):
    report = _report_json(cli, run_dir)
    w, reason = report["winner"], report["not_trained"][0]["reason"]
    code, md, err = cli("report", "--from", run_dir)  # md on stdout, figures into the run directory
    assert code == 0, err
    assert md.startswith("# scalesearch report") and f"Winner: network {w['network']}" in md
    assert reason in md and w["verdict"]["text"].split(":")[0] in md
    assert "tiny\\_\\<i\\>%\\#\\&$~^" in md  # the data name, escaped for Markdown
    assert (run_dir / "report-accuracy-vs-flops.png").is_file() and (run_dir / "report-alpha-beta.pdf").is_file()
    assert "](<report-alpha-beta.png>)" in md

    page = tmp_path / "r.html"
    code, _, err = cli("report", "--from", run_dir, "--out", page)
    assert code == 0, err
    text = page.read_text()
    parser = _Text()
    parser.feed(text)
    words = "".join(parser.text)
    assert f"Winner: network {w['network']}" in words and reason in words and f"{DATA_NAME}" in words
    assert "<i>" not in text  # the data name's markup is escaped, never live
    assert "i" not in parser.tags
    # Self-contained: figures embedded, nothing loaded from elsewhere.
    assert text.count('src="data:image/png;base64,') == 2
    assert 'src="http' not in text and "<link" not in text and "<script" not in text
    assert "depth only" in words  # compare.json's table

    code, tex, err = cli("report", "--from", run_dir, "--format", "latex", "--no-figures")
    assert code == 0, err
    assert rf"Winner: network {w['network']}" in tex and "max-params cap of 300,000" in tex
    assert "Not separated" in md and "Not separated" in words and "Not separated" in tex
    assert "under budget (1.7" in md and "under budget (1.7" in words  # the marked points, in every format
    assert r"\dag{}" in tex
    assert r"\toprule" in tex and "multiply-adds" in tex and r"tiny\_\textless{}i\textgreater{}\%\#\&\$" in tex


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed (Debian: "
                    "apt-get install texlive-latex-recommended; .ci/run installs it)")
def test_latex_compiles_with_booktabs_and_its_figure(cli, run_dir, tmp_path):
    code, _, err = cli("report", "--from", run_dir, "--out", tmp_path / "report.tex")
    assert code == 0, err
    for packages, figure_used in ((r"\usepackage{booktabs}\usepackage{graphicx}", True),
                                  (r"\usepackage{booktabs}", False)):
        (tmp_path / "doc.tex").write_text("\\documentclass{article}\n" + packages + "\n\\begin{document}\n"
                                          "\\input{report.tex}\n\\end{document}\n")
        done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp_path,
                              capture_output=True, text=True, timeout=180)
        assert done.returncode == 0, done.stdout[-3000:]
        log = (tmp_path / "doc.log").read_text(errors="replace")
        assert ("report-accuracy-vs-flops.pdf  used" in log) == figure_used
        assert ("report-alpha-beta.pdf  used" in log) == figure_used
        assert (tmp_path / "doc.pdf").read_bytes()[:5] == b"%PDF-"


def _check_png(path):
    import matplotlib.image

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pixels = matplotlib.image.imread(path)
    assert pixels.ndim == 3 and pixels.shape[2] in (3, 4)
    assert 400 <= pixels.shape[0] <= 3000 and 600 <= pixels.shape[1] <= 3000
    assert float(pixels[..., :3].std()) > 0.02  # something is drawn


def test_figures_show_what_the_storage_holds(run_dir, storage_view, tmp_path):
    from scalesearch.reporting.figures import accuracy_vs_flops, alpha_beta_plane
    from scalesearch.reporting.load import load_run

    _, points = storage_view
    report = load_run(run_dir)
    plane = alpha_beta_plane(report, tmp_path / "ab")
    acc = accuracy_vs_flops(report, tmp_path / "acc")
    for drawn in (plane, acc):
        assert [p.suffix for p in drawn.paths] == [".png", ".pdf"]
        _check_png(drawn.paths[0])
        assert drawn.paths[1].read_bytes()[:5] == b"%PDF-"
    # Rejected points are drawn, with their own marker, exactly where the storage has them.
    rejected = {k for k, p in points.items() if p["trials"][0].user_attrs.get("outcome") == "rejected"}
    assert rejected and set(plane.points["rejected"]) == rejected
    trained = {k for k, p in points.items() if p["seeds"]}
    assert set(plane.points["trained"]) == trained
    w = report.winner
    assert plane.points["winner"] == [pytest.approx((w["alpha"], w["beta"]))] and plane.points["paper"] == [(1.2, 1.1)]
    assert plane.points["winner_interval"] == [(*w["alpha_range"], *w["beta_range"])]
    built = {}
    for k, p in points.items():
        built.setdefault(p["trials"][0].user_attrs["network"], []).append(k)
    boxed = sorted((min(a for a, _ in ks), max(a for a, _ in ks), min(b for _, b in ks), max(b for _, b in ks))
                   for ks in built.values() if len(ks) > 1)
    assert sorted(box[1:] for box in plane.points["networks"]) == boxed  # every network of several points, boxed
    # Accuracy vs FLOPs: one point per distinct network, at its measured multiply-adds and mean accuracy.
    networks = {}
    for k in trained:
        t = points[k]["trials"][0]
        networks.setdefault(t.user_attrs["network"], (t.user_attrs["flops"] / 1e6,
                                                      100 * statistics.fmean(points[k]["seeds"].values())))
    assert sorted(acc.points["candidates"]) == [pytest.approx(p) for p in sorted(networks.values())]
    winner_trial = next(p for p in points.values() if p["trials"][0].number == w["trial"])["trials"][0]
    assert acc.points["winner"] == [pytest.approx((winner_trial.user_attrs["flops"] / 1e6, 100 * w["accuracy"]))]
    front = acc.points["pareto"]
    assert [y for _, y in front] == sorted(y for _, y in front)  # a front never drops
    assert max(y for _, y in front) == pytest.approx(max(y for _, y in networks.values()))
    # The points trained under the budget are ringed, at their own cost.
    under = {t.user_attrs["network"]: (t.user_attrs["flops"] / 1e6, 100 * statistics.fmean(points[k]["seeds"].values()))
             for k in trained for t in [points[k]["trials"][0]] if t.user_attrs.get("under_budget")}
    assert under and sorted(acc.points["under_budget"]) == [pytest.approx(p) for p in sorted(under.values())]


def test_report_draws_a_flop_run_against_activations(cli, run_dir, storage_view, tmp_path):
    """`report --cost activations`: the same candidates at the activations the trials recorded (no budget band:
    the budget was on FLOPs); an unknown metric is one line, exit 2."""
    from scalesearch.metrics import CostMetric
    from scalesearch.reporting.figures import accuracy_vs_flops
    from scalesearch.reporting.load import load_run

    _, points = storage_view
    report = load_run(run_dir)
    report.axis = CostMetric(name="activations")
    acc = accuracy_vs_flops(report, tmp_path / "acts")
    expected = {}
    for k, p in points.items():
        if p["seeds"]:
            t = p["trials"][0]
            expected.setdefault(t.user_attrs["network"], (t.user_attrs["activations"] / 1e6,
                                                          100 * statistics.fmean(p["seeds"].values())))
    assert sorted(acc.points["candidates"]) == [pytest.approx(v) for v in sorted(expected.values())]
    code, _, err = cli("report", "--from", run_dir, "--cost", "activations", "--out", tmp_path / "r.md")
    assert code == 0, err
    assert (tmp_path / "r-accuracy-vs-flops.png").is_file()
    code, _, err = cli("report", "--from", run_dir, "--cost", "joules", "--no-figures")
    assert code == 2 and "unknown --cost" in one_line_error(err)


def test_report_times_a_flop_runs_networks_for_a_latency_axis(run_dir, tmp_path):
    """`report --cost latency` on a FLOP run: each trained network is timed (batch 1, CPU) for the figure; the
    timings are the cached measurements `measure_latency` gives for those networks."""
    import scalesearch
    from scalesearch.latency import measure_latency
    from scalesearch.reporting.load import load_run

    result = scalesearch.report_run(from_run=run_dir, out=tmp_path / "lat.md", cost="latency")
    assert (tmp_path / "lat-accuracy-vs-flops.png").is_file() and result.text.startswith("# scalesearch report")
    report = load_run(run_dir)
    w = report.winner_record
    timed = measure_latency("efficientnet", depth_mult=w.depth_mult, width_mult=w.width_mult,
                            resolution=w.resolution, num_classes=report.provenance["data"]["num_classes"])
    assert timed.median_ms > 0 and timed.batch == 1 and timed.device.startswith("cpu")


def test_library_call_matches_the_cli(cli, run_dir, tmp_path):
    import scalesearch

    result = scalesearch.report_run(from_run=run_dir, format="json", figures=False)
    assert result.out is None and result.figures == []
    assert json.loads(result.text) == _report_json(cli, run_dir)
    written = scalesearch.report_run(from_run=run_dir, out=tmp_path / "x" / "paper.tex")
    assert written.format == "latex" and (tmp_path / "x" / "paper.tex").read_text() == written.text
    assert sorted(p.name for p in written.figures) == ["paper-accuracy-vs-flops.pdf", "paper-accuracy-vs-flops.png",
                                                       "paper-alpha-beta.pdf", "paper-alpha-beta.png"]


def test_bad_input_is_one_line(cli, run_dir, tmp_path):
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "best.json").write_text("{not json")
    no_db = tmp_path / "no-db"
    no_db.mkdir()
    shutil.copy(run_dir / "best.json", no_db / "best.json")
    locked = tmp_path / "locked"
    locked.mkdir()
    best = json.loads((run_dir / "best.json").read_text())
    best["provenance"]["config"]["storage"] = "postgresql+psycopg://scalesearch:***@127.0.0.1:1/db"
    (locked / "best.json").write_text(json.dumps(best))
    cases = [
        (["--from", tmp_path / "nope"], "no such directory"),
        (["--from", tmp_path], "no best.json"),
        (["--from", tmp_path / "a-file"], "not a directory"),
        (["--from", tmp_path / "garbage"], "not a scalesearch best.json"),
        (["--from", no_db], "study file"),
        (["--from", locked], "pass --storage"),
        (["--from", run_dir, "--format", "xml"], "unknown --format"),
        (["--from", run_dir, "--out", tmp_path / "a-file" / "r.md"], "--out"),
        (["--from", run_dir, "--out", tmp_path], "directory"),
        (["--from", run_dir, "--out", "/proc/report.md"], "--out"),
        ([], "--from"),
    ]
    for args, says in cases:
        code, out, err = cli("report", *args)
        assert code == 2 and out == "", (args, err)
        assert says in one_line_error(err), (args, err)
    assert not (no_db / "study.db").exists()  # reading never creates an empty study
    # A password given on the command line is never repeated in the error.
    code, _, err = cli("report", "--from", locked, "--storage", "postgresql+psycopg://scalesearch:s3cret@127.0.0.1:1/db")
    assert code == 2 and "s3cret" not in err and "scalesearch" in one_line_error(err)
