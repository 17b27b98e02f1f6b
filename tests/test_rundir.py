"""The one reader of a run directory: what it accepts from whom, and the significance key old and new."""

import json

import pytest

from scalesearch.config import SearchConfig
from scalesearch.errors import UserError
from scalesearch.rundir import read_run_dir


def _write(path, payload):
    path.mkdir(parents=True, exist_ok=True)
    (path / "best.json").write_text(json.dumps(payload), encoding="utf-8")
    return path


RUN = {"alpha": 1.1, "beta": 1.05, "gamma": 1.15, "budget": 2.0, "trial": 3, "study": "s", "complete": True,
       "provenance": {"config": {"tolerance": 0.2, "family": "resnet18"}}}


def test_new_runs_write_the_significance_level_as_significance_not_alpha():
    config = SearchConfig(mode="grid", significance=0.01).to_dict()
    assert config["significance"] == 0.01 and "alpha" not in config


@pytest.mark.parametrize("config, expected", [
    ({"significance": 0.01}, 0.01),  # a run of this release
    ({"alpha": 0.02}, 0.02),  # a run from before it: config's alpha was --alpha-level
    ({}, 0.05),
])
def test_significance_is_read_from_new_and_old_runs(tmp_path, config, expected):
    run = read_run_dir(_write(tmp_path, {**RUN, "provenance": {"config": config}}))
    assert run.significance == expected
    assert run.coefficients.alpha == 1.1  # the top-level alpha stays the depth coefficient


def test_a_run_reads_as_typed_fields(tmp_path):
    run = read_run_dir(_write(tmp_path / "r", RUN))
    assert (run.budget, run.trial, run.study, run.tolerance, run.family, run.complete) == \
        (2.0, 3, "s", 0.2, "resnet18", True)
    assert run.metric.name == "flops" and run.answer is None
    assert run.storage_url("postgresql://u:p@h/db") == "postgresql://u:p@h/db"
    with pytest.raises(UserError, match="study file .* is missing"):
        run.storage_url()  # no study.db beside it: never created empty by reading


def test_a_best_json_of_another_tool_gives_coefficients_to_expand_but_no_study(tmp_path):
    foreign = _write(tmp_path / "f", {"alpha": 1.2, "beta": 1.1, "gamma": 1.15})
    run = read_run_dir(foreign / "best.json", study=False)  # expand takes the file itself too
    assert run.coefficients.gamma == 1.15 and run.family is None and run.complete is None
    with pytest.raises(UserError, match="not a scalesearch best.json"):
        read_run_dir(foreign)  # compare and report need the study it names


@pytest.mark.parametrize("payload, needle", [
    ("{not json", "not a scalesearch best.json"),
    (json.dumps({"alpha": "x", "beta": 1, "gamma": 1}), "not a scalesearch best.json"),
    (json.dumps([1, 2]), "not a scalesearch best.json"),
])
def test_a_broken_best_json_is_one_user_error(tmp_path, payload, needle):
    tmp_path.joinpath("best.json").write_text(payload, encoding="utf-8")
    for study in (True, False):
        with pytest.raises(UserError, match=needle):
            read_run_dir(tmp_path, study=study)


def test_missing_places_are_named(tmp_path):
    with pytest.raises(UserError, match="no such directory"):
        read_run_dir(tmp_path / "nowhere")
    with pytest.raises(UserError, match="no best.json there"):
        read_run_dir(tmp_path)
