"""Each option has one default, flag and help: SearchConfig's (or WorkerOptions') field. The commands and the API
functions are built from them; these tests catch a literal written anywhere else."""

import inspect

import pytest
import typer

import scalesearch
from scalesearch.cli import app
from scalesearch.config import SearchConfig, WorkerOptions, option_fields


def _command(name: str):
    return typer.main.get_command(app).commands[name]


def _fields(mode: str):
    return option_fields(SearchConfig, mode) + option_fields(WorkerOptions, mode)


def _by_flag(command):
    return {opt.split("/")[0]: p for p in command.params for opt in p.opts}


@pytest.mark.parametrize("mode", ["grid", "search"])
def test_every_option_of_the_command_is_a_field_with_its_default_and_help(mode):
    command = _command(mode)
    params = _by_flag(command)
    fields = _fields(mode)
    assert {f.metadata["flag"].split("/")[0] for f in fields} == {p.opts[0] for p in command.params}
    for f in fields:
        param = params[f.metadata["flag"].split("/")[0]]
        assert param.default == f.default, f.name
        assert param.help == f.metadata["help"], f.name


@pytest.mark.parametrize("mode", ["grid", "search"])
def test_the_api_function_takes_the_same_options_with_the_same_defaults(mode):
    signature = inspect.signature(getattr(scalesearch, mode))
    options = {n: p for n, p in signature.parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}
    assert {f.name: f.default for f in _fields(mode)} == {n: p.default for n, p in options.items()}


def test_the_api_runs_the_commands_worker_default():
    # workers.py's promise: a Python caller gets what the command line gets (the command's --jobs is auto).
    assert WorkerOptions().jobs == "auto"
    assert inspect.signature(scalesearch.grid).parameters["jobs"].default == _by_flag(_command("grid"))["--jobs"].default
    assert inspect.signature(scalesearch.compare).parameters["jobs"].default == \
        _by_flag(_command("compare"))["--jobs"].default


def test_the_shared_options_of_other_commands_are_the_same_fields():
    for command in ("compare", "report", "expand", "train"):
        params = _by_flag(_command(command))
        for f in option_fields(SearchConfig, "grid"):
            param = params.get(f.metadata["flag"].split("/")[0])
            if param is not None and param.help == f.metadata["help"]:
                assert param.default == f.default, (command, f.name)


@pytest.mark.parametrize("mode, option", [("grid", "trials"), ("search", "step"), ("grid", "tpyo")])
def test_an_option_of_another_mode_is_refused_by_the_api_before_any_work(tmp_path, mode, option):
    with pytest.raises(TypeError, match=option):
        getattr(scalesearch, mode)(out=tmp_path / "o", **{option: 3})
    assert not (tmp_path / "o").exists()
