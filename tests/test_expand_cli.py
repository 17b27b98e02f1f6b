"""`scalesearch expand` and `scalesearch flops` as a user runs them."""

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import catches_signal as _catches, one_line_error


def test_preset_table_reproduces_official_family_as_csv(cli, in_tmp):
    code, out, err = cli("expand", "--phi", "0..7", "--preset", "efficientnet", "--format", "csv")
    assert code == 0, err
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["name"] for r in rows] == [f"B{i}" for i in range(8)]
    for col in ("name", "phi", "depth_mult", "width_mult", "resolution", "params", "flops", "flops_ratio",
                "target_ratio", "dropout"):
        assert col in rows[0]
    assert int(rows[0]["params"]) == 5_288_548
    assert int(rows[7]["params"]) == 66_347_960
    assert [int(r["resolution"]) for r in rows] == [224, 240, 260, 300, 380, 456, 528, 600]
    assert float(rows[0]["flops_ratio"]) == 1.0
    # Measured ratios grow with φ and B7 costs ~96x B0.
    ratios = [float(r["flops_ratio"]) for r in rows]
    assert ratios == sorted(ratios)
    assert 90 < ratios[7] < 100


def test_formula_expansion_tracks_target_ratio(cli, in_tmp):
    code, out, err = cli("expand", "--phi", "0..4", "--alpha", "1.2", "--beta", "1.1", "--gamma", "1.15",
                         "--format", "json")
    assert code == 0, err
    data = json.loads(out)
    assert "multiply-adds" in data["flop_convention"]
    members = data["members"]
    assert [m["phi"] for m in members] == [0, 1, 2, 3, 4]
    for m in members:
        assert m["target_ratio"] == pytest.approx(1.9203**m["phi"], rel=1e-3)
        assert m["ratio_error"] == pytest.approx(m["flops_ratio"] / m["target_ratio"] - 1)
        # Rounding (ceil of depth, channels to 8, resolution to 8) keeps members near the ideal.
        assert abs(m["ratio_error"]) < 0.35
    assert members[2]["depth_mult"] == pytest.approx(1.44)
    assert members[2]["resolution"] == 296  # 224 * 1.15**2 = 296.2


def test_default_source_is_paper_and_says_so(cli, in_tmp):
    code, out, err = cli("expand", "--phi", "1", "--format", "json")
    assert code == 0, err
    assert "paper" in err
    assert json.loads(out)["alpha"] == 1.2


def test_from_best_json_and_latest_run(cli, in_tmp):
    run = in_tmp / "runs" / "myrun"
    run.mkdir(parents=True)
    (run / "best.json").write_text(json.dumps({"alpha": 1.3, "beta": 1.05, "gamma": 1.12, "budget": 2.0,
                                                "accuracy": 0.7}))
    code, out, err = cli("expand", "--phi", "1", "--from", str(run), "--format", "json")
    assert code == 0, err
    assert json.loads(out)["alpha"] == 1.3
    # No source at all: the latest run under runs/ is used, and named.
    code, out, err = cli("expand", "--phi", "1", "--format", "json")
    assert code == 0
    assert json.loads(out)["beta"] == 1.05
    assert "best.json" in err


@pytest.mark.parametrize("fmt, suffix", [("md", ".md"), ("latex", ".tex"), ("csv", ".csv"), ("json", ".json")])
def test_writes_files_in_each_format(cli, in_tmp, fmt, suffix):
    target = in_tmp / "out" / f"family{suffix}"
    code, out, err = cli("expand", "--phi", "0..2", "--out", str(target))  # format from the suffix
    assert code == 0, err
    text = target.read_text()
    assert out == ""
    if fmt == "md":
        table_lines = [l for l in text.splitlines() if l.startswith("|")]
        assert len(table_lines) == 2 + 3
        assert len({l.count("|") for l in table_lines}) == 1
    elif fmt == "latex":
        assert "\\toprule" in text and "\\midrule" in text and "\\bottomrule" in text
        assert text.count("\\begin{") == text.count("\\end{")
        rows = [l for l in text.splitlines() if l.endswith("\\\\")]
        assert len(rows) == 1 + 3
        assert len({l.count(" & ") for l in rows}) == 1
    elif fmt == "csv":
        assert len(list(csv.DictReader(io.StringIO(text)))) == 3
    else:
        assert len(json.loads(text)["members"]) == 3


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed")
def test_latex_compiles(cli, in_tmp):
    code, out, err = cli("expand", "--phi", "0..3", "--format", "latex")
    assert code == 0
    doc = "\\documentclass{article}\n\\usepackage{booktabs}\n\\usepackage[margin=1cm]{geometry}\n" \
          "\\begin{document}\n" + out + "\\end{document}\n"
    (in_tmp / "t.tex").write_text(doc)
    done = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"], cwd=in_tmp,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-2000:]


def test_flops_command_json(cli):
    code, out, err = cli("flops", "--width-mult", "1.0", "--depth-mult", "1.0", "--resolution", "224", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["params"] == 5_288_548
    assert 0.38e9 < data["flops"] < 0.41e9


@pytest.mark.parametrize(
    "args, needle",
    [
        (["expand", "--phi", "7..1"], "reversed"),
        (["expand", "--phi", "one"], "--phi"),
        (["expand", "--alpha", "0.9", "--beta", "1.1", "--gamma", "1.1"], "same way"),
        (["expand", "--alpha", "0", "--beta", "0.9", "--gamma", "0.9"], "> 0"),
        (["expand", "--cost", "joules"], "unknown --cost"),
        (["expand", "--cost", "latency", "--latency-device", "tpu"], "--latency-device"),
        (["expand", "--cost", "latency", "--latency-batch", "0"], "batch"),
        (["expand", "--alpha", "1.2"], "together"),
        (["expand", "--preset", "vgg"], "unknown preset"),
        (["expand", "--preset", "efficientnet", "--phi", "10"], "no member"),
        (["expand", "--family", "nope"], "unknown family"),
        (["expand", "--base-resolution", "0"], "positive"),
        (["expand", "--format", "xml"], "format"),
        (["expand", "--out", "a-file/t.csv"], "--out"),
        (["expand", "--out", ".", "--format", "csv"], "directory"),
        (["expand", "--out", "table.xyz"], "suffix"),
        (["expand", "--from", "does-not-exist"], "best.json"),
        (["flops", "--resolution", "-3"], "positive"),
        (["flops", "--family", "nope"], "unknown family"),
    ],
)
def test_bad_input_is_one_line_exit_2(cli, in_tmp, args, needle):
    (in_tmp / "a-file").write_text("not a directory")
    code, out, err = cli(*args)
    assert code == 2
    assert needle in one_line_error(err)


def test_console_script_error_has_no_traceback(in_tmp):
    done = subprocess.run([sys.executable, "-m", "scalesearch", "expand", "--phi", "3..1"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert one_line_error(done.stderr).startswith("scalesearch: error:")


def test_written_files_get_ordinary_permissions(tmp_path):
    """Atomic writes go through a private temp file; the result must be as readable as a plain write."""
    import stat

    from scalesearch.fileio import atomic_write_text

    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    target = atomic_write_text(tmp_path / "out" / "best.json", "{}")
    assert stat.S_IMODE(target.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    os.chmod(target, 0o640)
    atomic_write_text(target, "{}")  # rewriting keeps a mode the user chose
    assert stat.S_IMODE(target.stat().st_mode) == 0o640


def test_match_budget_holds_members_within_3_percent_down_to_phi_minus_3(cli):
    """Paper coefficients: rounding alone puts B-2 at -33% and B2 at +26% of (α·β²·γ²)^φ. --match-budget keeps
    each member's depth, moves its resolution (multiples of 8, then finer), and only where no resolution lands
    (stride-2 layers make the cost jump at multiples of 32 px) nudges the width by the least that does; every
    member ends within 3%, and the note names what departed from the plain rule."""
    args = ["expand", "--phi", "-3..1", "--alpha", "1.2", "--beta", "1.1", "--gamma", "1.15", "--format", "json"]
    code, plain, _ = cli(*args)
    code2, matched, err = cli(*args, "--match-budget")
    assert code == code2 == 0
    plain, matched = json.loads(plain)["members"], json.loads(matched)["members"]
    assert [m["phi"] for m in matched] == list(range(-3, 2))
    assert max(abs(p["ratio_error"]) for p in plain) > 0.2
    for p, m in zip(plain, matched):
        assert m["depth_mult"] == p["depth_mult"]
        assert abs(m["ratio_error"]) <= 0.03, m
        assert abs(m["width_mult"] / p["width_mult"] - 1) <= 0.15
        if m["width_mult"] != p["width_mult"]:
            assert f"{m['name']} width" in err  # said, not silent
        elif m["resolution"] % 8:
            assert f"{m['name']} {m['resolution']}px" in err
    assert any(m["resolution"] % 8 == 0 and m["width_mult"] == p["width_mult"] for p, m in zip(plain, matched))


def test_public_api_mirrors_the_cli():
    import scalesearch

    members = scalesearch.expand(alpha=1.2, beta=1.1, gamma=1.15, phis=[0, 1])
    assert [m.name for m in members] == ["B0", "B1"] and members[0].flops == 399352864
    with pytest.raises(scalesearch.UserError):
        scalesearch.expand(alpha=1.2, phis=[1])  # β and γ missing
    with pytest.raises(scalesearch.UserError, match="--budget"):
        scalesearch.grid(budget=1.0)


def test_sigterm_ends_a_command_like_ctrl_c(in_tmp):
    """`timeout` and `kill` send SIGTERM: exit 130 without a traceback, as for Ctrl-C (before: killed, -15)."""
    # A cost cache of its own: with costs measured by earlier tests, the command would end before the signal.
    proc = subprocess.Popen([sys.executable, "-m", "scalesearch", "expand", "--phi", "0..7", "--preset",
                             "efficientnet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "SCALESEARCH_CACHE": str(in_tmp / "empty-cache")})
    # Signal once the handler is in (Linux: caught signals in /proc); earlier, Python's default would kill it
    # while torch is still importing, which says nothing about scalesearch. Measuring B0-B7 takes ~15 s.
    deadline = time.time() + 60
    while time.time() < deadline and not _catches(proc.pid, signal.SIGTERM):
        time.sleep(0.1)
    # Then into the measuring: a SIGTERM in the command's first second sometimes ended it with status 0
    # (1 run in 4; not traced yet, see the closing note), which this test is not about.
    time.sleep(3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, (proc.returncode, err)


def test_budget_limit_is_for_new_runs_not_for_comparing_an_existing_one():
    from scalesearch.config import SearchConfig
    from scalesearch.errors import UserError

    for mode in ("grid", "search"):
        with pytest.raises(UserError, match="--budget 200x"):
            SearchConfig(mode=mode, budget=200.0).validated()
    assert SearchConfig(mode="compare", budget=200.0).validated().budget == 200.0
