"""`--max-params`: a cap on parameters for grid, search and expand (issue 24, part 2)."""

import csv
import json

import optuna
import pytest

from conftest import one_line_error
from scalesearch.scaling import parse_count


def test_counts_read_as_users_write_them():
    assert parse_count("5000000") == parse_count("5M") == parse_count("5m") == 5_000_000
    assert parse_count("1.5M") == 1_500_000 and parse_count("200k") == 200_000 and parse_count(7) == 7
    for bad in ("0", "-3", "five", "5T", ""):
        with pytest.raises(ValueError):
            parse_count(bad)


@pytest.mark.slow
def test_grid_rejects_candidates_over_the_cap_with_the_reason_and_trains_the_rest(cli, tmp_path, tiny_npz):
    out = tmp_path / "run"
    # The φ = 0 CPU proxy on 6 classes has 200,748 parameters; the 2x grid's networks reach about 0.35 M.
    cap = 260_000
    code, _, err = cli("grid", "--budget", "2x", "--step", "0.2", "--data", tiny_npz, "--epochs", "1", "--seeds", "1",
                       "--tolerance", "0.25", "--out", out, "--max-params", "260k")
    assert code == 0, err
    rows = list(csv.DictReader((out / "trials.csv").open()))
    over = [r for r in rows if int(r["params"]) > cap]
    under = [r for r in rows if int(r["params"]) <= cap and "no resolution" not in r["reason"]]
    assert over and under
    assert all(r["state"] == "rejected" and "over the --max-params cap of 260,000" in r["reason"] for r in over)
    assert all(r["state"] == "complete" for r in under)
    best = json.loads((out / "best.json").read_text())
    assert best["provenance"]["config"]["max_params"] == cap
    # The cap is part of what the study measured: resuming without it is refused.
    code, _, err = cli("grid", "--budget", "2x", "--step", "0.2", "--data", tiny_npz, "--epochs", "1", "--seeds", "1",
                       "--tolerance", "0.25", "--out", out)
    assert code == 2 and "max_params" in one_line_error(err)


def test_a_cap_below_the_proxy_is_refused_before_any_work(cli, tmp_path, tiny_npz):
    out = tmp_path / "run"
    code, _, err = cli("grid", "--budget", "2x", "--data", tiny_npz, "--out", out, "--max-params", "100k")
    line = one_line_error(err)
    assert code == 2 and "below the φ = 0 proxy's own parameters (at least" in line
    assert not (out / "trials.csv").exists()
    code, _, err = cli("expand", "--phi", "1", "--max-params", "0")
    assert code == 2 and "--max-params" in one_line_error(err)
    # Below the φ = 0 network of a family table: refused in one line, not an empty table.
    code, _, err = cli("expand", "--phi", "0..3", "--max-params", "1M")
    assert code == 2 and "below the φ = 0 network's own 5,288,548 parameters" in one_line_error(err)
    # Refused before the data are read: a garbled data file is never opened.
    garbled = tmp_path / "garbled.npz"
    garbled.write_bytes(b"not an npz")
    code, _, err = cli("grid", "--budget", "2x", "--data", garbled, "--out", out, "--max-params", "150k")
    assert code == 2 and "--max-params 150,000 is below the φ = 0 proxy's own parameters" in one_line_error(err)


def test_expand_leaves_out_members_over_the_cap_and_says_which():
    import scalesearch

    notes = []
    members = scalesearch.expand(alpha=1.2, beta=1.1, gamma=1.15, phis=range(0, 8), max_params=20_000_000,
                                 on_note=notes.append)
    assert [m.name for m in members] == ["B0", "B1", "B2", "B3"]
    assert all(m.params <= 20_000_000 for m in members)
    left = next(n for n in notes if n.startswith("Left out over --max-params 20,000,000"))
    assert "B4 (" in left and "B7 (" in left


def test_a_bad_cap_is_refused_before_any_member_is_measured(monkeypatch):
    import scalesearch
    import scalesearch.expansion.members as expansion

    def measured(*args, **kwargs):
        raise AssertionError("a member was measured before the cap was checked")

    monkeypatch.setattr(expansion, "expand_family", measured)
    with pytest.raises(scalesearch.UserError, match="--max-params"):
        scalesearch.expand(alpha=1.2, beta=1.1, gamma=1.15, phis=[1], max_params=0)


def test_a_preset_table_with_no_member_under_the_cap_is_one_line(cli):
    """Defect: `expand --preset efficientnet --max-params 10` wrote an empty table and exited 0."""
    code, out, err = cli("expand", "--phi", "0..2", "--preset", "efficientnet", "--max-params", "10")
    line = one_line_error(err)
    assert code == 2 and out == "" and "--max-params 10 leaves no member" in line and "B0" in line
