"""The strategies and the ask/tell loop around them: a peer failing a live trial, --trials as a bound, the
strategy's own sampler behind the study."""

from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState

from scalesearch.config import SearchConfig
from scalesearch.engine import queue
from scalesearch.engine.run import Worker, open_study
from scalesearch.engine.strategies import SamplerStrategy, Stray
from test_queue import FakeExperiment, evaluated_points, grid_config, grid_points

optuna.logging.set_verbosity(optuna.logging.ERROR)


@pytest.fixture
def study():
    return optuna.create_study(storage=optuna.storages.RDBStorage("sqlite:///:memory:"), direction="maximize")


def test_a_trial_failed_by_a_peer_while_it_ran_is_queued_again_not_a_crash(study, tmp_path):
    """Defect: a peer's stale-heartbeat check failed a trial whose worker was only suspended; the worker's next
    write raised UpdateFinishedTrialError and the run died with a traceback."""
    cfg = grid_config(tmp_path)
    failed_once = []

    def peer_fails_me(trial, c, seed):
        if not failed_once:
            failed_once.append(trial.number)
            study.tell(trial.number, state=TrialState.FAIL)  # what the peer's stale check does
            trial.set_user_attr("written_after", True)  # this worker wakes up and writes

    Worker(cfg, FakeExperiment(on_evaluate=peer_fails_me), study).work(lambda *_: None, lambda _: None)
    assert set(evaluated_points(study)) == {(a, b, 0) for a, b in grid_points(cfg)}
    assert set(evaluated_points(study).values()) == {1}  # every point once, the failed one again afterwards
    first = study.trials[failed_once[0]]
    assert first.state == TrialState.FAIL and queue.trial_outcome(first) == "lost"


def test_a_draw_beyond_trials_steps_aside(study, tmp_path):
    """Defect: when a peer took the queued item this worker asked for, ask() drew a new candidate and a
    search trained more than --trials of them."""
    cfg = SearchConfig(mode="search", budget=2.0, trials=2, sampler="random", out=tmp_path, seeds=1)
    strategy = SamplerStrategy(cfg, FakeExperiment())
    for _ in range(2):
        t = study.ask()
        strategy.subject(t, item=None)
        study.tell(t, 0.5)
    extra = study.ask()
    with pytest.raises(Stray, match="--trials 2 already drawn"):
        strategy.subject(extra, item=None)
    assert not strategy.wants_new_candidate(study.get_trials(deepcopy=False))


@pytest.mark.parametrize("name, kind", [("cmaes", optuna.samplers.CmaEsSampler), ("tpe", optuna.samplers.TPESampler),
                                        ("random", optuna.samplers.RandomSampler)])
def test_the_study_draws_with_the_strategys_sampler_seeded_per_trial(tmp_path, name, kind):
    cfg = SearchConfig(mode="search", budget=2.0, trials=4, sampler=name, out=tmp_path, seeds=1)
    exp = SimpleNamespace(proxy=SimpleNamespace(train=SimpleNamespace(epochs=2), seed_cap=3),
                          identity=lambda: {"data": "x"})
    study = open_study(cfg, exp)
    Worker(cfg, FakeExperiment(), study).work(lambda *_: None, lambda _: None)
    assert isinstance(study.sampler.current, kind)
    draws = [(t.params["s1"], t.params["s2"]) for t in study.trials if t.state == TrialState.COMPLETE]
    assert len(draws) == 4 and len(set(draws)) == 4
    # The same command again in a fresh directory draws the same points: reproducible from --seed.
    (tmp_path / "again").mkdir()
    again_cfg = SearchConfig(mode="search", budget=2.0, trials=4, sampler=name, out=tmp_path / "again", seeds=1)
    again = open_study(again_cfg, exp)
    Worker(again_cfg, FakeExperiment(), again).work(lambda *_: None, lambda _: None)
    assert [(t.params["s1"], t.params["s2"]) for t in again.trials if t.state == TrialState.COMPLETE] == draws


def _corners_strategy():
    """A strategy written outside the package, as a new mode would be: one class and one registration. It trains
    only the grid's first and last points; everything else (queue, seeds, rounds, outputs) is the engine's."""
    from scalesearch.engine.strategies import STRATEGIES, GridStrategy, register

    if "test-corners" in STRATEGIES:
        return STRATEGIES["test-corners"]

    @register
    class CornersStrategy(GridStrategy):
        mode = "test-corners"

        def points(self) -> list[dict]:
            every = super().points()
            return [every[0], every[-1]]

    return CornersStrategy


def test_a_new_strategy_is_one_class_and_one_registration(tmp_path, tiny_npz):
    from scalesearch.api import run_search
    from scalesearch.engine.strategies import register

    strategy = _corners_strategy()
    cfg = SearchConfig(mode="test-corners", data=str(tiny_npz), epochs=1, seeds=1, out=tmp_path / "run",
                       device="cpu")
    result = run_search(cfg)
    study = optuna.load_study(study_name=cfg.study_name, storage=cfg.storage_url)
    assert study.user_attrs["experiment"]["mode"] == "test-corners"
    assert sorted((r.alpha, r.beta) for r in result.records) == \
        sorted((p["alpha"], p["beta"]) for p in strategy(cfg).points())
    assert result.complete and result.best is not None and (tmp_path / "run" / "best.json").is_file()
    with pytest.raises(ValueError, match="already registered"):
        register(strategy)


def test_an_unregistered_mode_is_one_user_error(tmp_path, tiny_npz):
    from scalesearch.api import run_search
    from scalesearch.errors import UserError

    with pytest.raises(UserError, match="unknown mode 'nonesuch'"):
        run_search(SearchConfig(mode="nonesuch", data=str(tiny_npz), out=tmp_path / "run", device="cpu"))
    assert not (tmp_path / "run" / "study.db").exists()
