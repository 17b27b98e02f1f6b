"""What a trial reuses instead of redoing: resized splits, measured costs, parallel budget matching; and the
timings trials.csv records so that the overhead (wall time less time in training steps) is visible."""

import csv
import json
import os
import subprocess
import sys

import optuna
import pytest
import torch

from scalesearch.config import SearchConfig
from scalesearch.cost import measure_cost
from scalesearch.data import load_data, synthetic_data
from scalesearch.engine.objective import Experiment
from scalesearch.engine.strategies import Member
from scalesearch.scaling import Coefficients
from scalesearch.train import SplitsCache, to_device

CPU = torch.device("cpu")


def test_splits_are_resized_once_per_resolution_and_the_oldest_dropped_past_the_budget():
    data = synthetic_data(64, 16, 16, 48, seed=0)
    one = to_device(data, 32, CPU).nbytes
    cache = SplitsCache(data, CPU, budget_bytes=2 * one + 1)  # room for two 32 px entries
    first = cache.get(32)
    assert cache.get(32) is first  # reused, not resized again
    torch.testing.assert_close(first.train_x, to_device(data, 32, CPU).train_x, rtol=0, atol=0)
    cache.get(24)
    assert 32 in cache and 24 in cache
    cache.get(32)  # now the most recently used
    cache.get(30)  # over the budget: the least recently used (24) goes
    assert 24 not in cache and 32 in cache and 30 in cache


def test_a_measured_cost_is_kept_between_processes_and_equals_a_fresh_measurement(tmp_path):
    env = {**os.environ, "SCALESEARCH_CACHE": str(tmp_path)}
    code = ("import json; from scalesearch.cost import measure_cost; "
            "print(json.dumps(measure_cost('efficientnet', width_mult=0.3, depth_mult=0.4, resolution=37, "
            "num_classes=7).to_dict()))")
    first = json.loads(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                      check=True).stdout)
    stored = list((tmp_path / "costs").glob("*.json"))
    assert len(stored) == 1 and json.loads(stored[0].read_text()) == first
    second = json.loads(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                       check=True).stdout)
    assert second == first
    # A damaged entry is measured again, not trusted; with the cache off nothing is read or written.
    stored[0].write_text("{not json")
    again = json.loads(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                      check=True).stdout)
    assert again == first and json.loads(stored[0].read_text()) == first
    off = subprocess.run([sys.executable, "-c", code], env={**env, "SCALESEARCH_CACHE": "off"},
                         capture_output=True, text=True, check=True).stdout
    assert json.loads(off) == first


def test_matching_candidates_in_parallel_gives_what_matching_them_one_by_one_gives(tmp_path, monkeypatch):
    monkeypatch.setenv("SCALESEARCH_CACHE", "off")  # the worker processes measure for themselves
    cfg = SearchConfig(mode="grid", budget=2.0, data="synthetic", device="cpu", out=tmp_path).validated()
    parallel = Experiment.prepare(cfg)
    serial = Experiment.prepare(cfg)
    points = [Member(Coefficients(1.0, 1.1, 1.2)), Member(Coefficients(1.2, 1.05, 1.1)),
              Member(Coefficients(1.35, 1.0, 1.05), phi=2)]
    assert parallel.premeasure(points, processes=2) == 3
    for c in points:
        assert parallel.candidate(c) == serial.candidate(c)
    assert parallel.premeasure(points, processes=2) == 0  # nothing left to match


@pytest.mark.slow
def test_trials_csv_records_training_warm_up_and_wall_seconds(cli, tmp_path, tiny_npz):
    out = tmp_path / "run"
    code, _, err = cli("grid", "--budget", "2x", "--step", "0.2", "--data", tiny_npz, "--epochs", "1", "--seeds", "1",
                       "--tolerance", "0.25", "--out", out)
    assert code == 0, err
    rows = [r for r in csv.DictReader((out / "trials.csv").open())
            if r["state"] == "complete" and "reused" not in r["reason"]]
    assert rows
    study = optuna.load_study(study_name=json.loads((out / "best.json").read_text())["study"],
                              storage=f"sqlite:///{out / 'study.db'}")
    by_number = {t.number: t for t in study.trials}
    for row in rows:
        train, warmup, wall = (float(row[k]) for k in ("train_seconds", "warmup_seconds", "wall_seconds"))
        assert 0 < train <= float(row["seconds"]) and 0 <= warmup <= float(row["seconds"])
        assert float(row["seconds"]) <= wall + 0.05  # the training call is part of the trial
        first = by_number[int(row["trial"])]
        if "same_network_as" not in first.user_attrs:  # a reused result trained nothing itself
            assert first.user_attrs["train_seconds"] > 0 and first.user_attrs["measure_seconds"] >= 0
