"""`--jobs N` and workers sharing one machine: thread shares, peers, Ctrl-C, exactly once."""

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter

import optuna
import pytest

from scalesearch.engine import queue
from scalesearch.engine.local_workers import LocalWorkers, auto_jobs, thread_share, trial_threads
from scalesearch.host import cpu_cores
from scalesearch.scaling import grid_candidates

optuna.logging.set_verbosity(optuna.logging.ERROR)


def test_thread_share_divides_the_cores_and_never_drops_below_one():
    assert thread_share(live_workers=1, cores=2) == 2
    assert thread_share(live_workers=2, cores=2) == 1
    assert thread_share(live_workers=3, cores=2) == 1
    assert thread_share(live_workers=4, cores=16) == 4


def test_a_trial_trains_with_one_thread_unless_asked_and_never_more_than_its_share():
    assert trial_threads(requested=None, live_workers=1, cores=2) == 1  # the default: reproducible
    assert trial_threads(requested=2, live_workers=1, cores=2) == 2
    assert trial_threads(requested=2, live_workers=2, cores=2) == 1  # asked for more than its share
    assert trial_threads(requested=4, live_workers=2, cores=16) == 4


def test_jobs_auto_is_one_worker_per_thread_share_of_the_cores_on_cpu_and_one_on_a_gpu():
    assert auto_jobs(on_cuda=False, threads=None, cores=2) == 2
    assert auto_jobs(on_cuda=False, threads=2, cores=2) == 1
    assert auto_jobs(on_cuda=False, threads=4, cores=2) == 1
    assert auto_jobs(on_cuda=False, threads=None, cores=64) == 16  # capped: each worker holds the data
    assert auto_jobs(on_cuda=True, threads=None, cores=16) == 1


HOLD = ("import sys, time; from scalesearch.engine.local_workers import LocalWorkers\n"
        "with LocalWorkers(sys.argv[1]):\n    print('ready', flush=True); time.sleep(120)\n")


def test_live_workers_count_each_other_and_a_killed_one_stops_counting(tmp_path):
    with LocalWorkers(tmp_path) as me:
        assert me.live() == 1
        peer = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        try:
            assert peer.stdout.readline().strip() == "ready"
            assert me.live() == 2
        finally:
            peer.kill()  # SIGKILL: no clean-up of its own; the kernel drops its lock
            peer.wait()
        assert me.live() == 1
        leftover = tmp_path / ".workers" / f"{peer.pid}.lock"
        assert leftover.exists()  # too young to reap: it may have been a worker just starting ...
        old = time.time() - 60
        os.utime(leftover, (old, old))
        assert me.live() == 1 and not leftover.exists()  # ... an old, unlocked one is tidied away
    assert not (tmp_path / ".workers" / f"{os.getpid()}.lock").exists()


def test_a_started_peer_counts_before_it_registers_and_once_after(tmp_path):
    # The first trial of `--jobs 2` starts while its peer is still importing torch: sized for one worker,
    # it ran two threads beside the peer's one on two cores and took 4x as long (measured).
    with LocalWorkers(tmp_path) as me:
        slow = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(2)\n" + HOLD, str(tmp_path)],
                                stdout=subprocess.PIPE, text=True)
        try:
            me.expect([slow.pid])
            assert me.live() == 2  # started, not registered yet
            assert slow.stdout.readline().strip() == "ready"
            assert me.live() == 2  # registered: counted once
        finally:
            slow.kill()
            slow.wait()
        assert me.live() == 1  # gone: no longer expected


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) counts as gone
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _two_workers_busy(storage: str, timeout: float = 180) -> set:
    """The workers of the 2x grid study once two have taken trials and one trial is complete (or the deadline)."""
    deadline = time.time() + timeout
    workers: set = set()
    while time.time() < deadline:
        try:
            trials = optuna.load_study(study_name="scalesearch-grid-2x", storage=storage).get_trials()
        except Exception:  # noqa: BLE001 - not created yet
            trials = []
        workers = {t.user_attrs["worker"] for t in trials if "worker" in t.user_attrs}
        if len(workers) >= 2 and any(t.state == optuna.trial.TrialState.COMPLETE for t in trials):
            break
        time.sleep(0.2)
    return workers


@pytest.mark.skipif(cpu_cores() < 2, reason="--jobs auto starts a second worker only with a second core")
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_default_jobs_use_every_core_stop_cleanly_on_ctrl_c_and_resume_to_every_point_exactly_once(tmp_path,
                                                                                                    tiny_npz,
                                                                                                    stop_signal):
    """SIGTERM (`timeout`, `kill`) too: before, it killed the first process and left its peer running the study."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "scalesearch", "grid", "--budget", "2x", "--data", str(tiny_npz), "--out", str(out),
           "--epochs", "1", "--step", "0.1", "--tolerance", "0.2", "--seeds", "1"]  # --jobs auto
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "SCALESEARCH_JOBS")}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env)
    storage = f"sqlite:///{out / 'study.db'}"
    workers = _two_workers_busy(storage)
    assert len(workers) >= 2, "the second worker never took a trial"
    proc.send_signal(stop_signal)  # to the first process only: it must stop its peer too
    _, err = proc.communicate(timeout=150)
    assert proc.returncode == 130 and "Traceback" not in err, err[-2000:]
    pids = {int(w.rsplit(":", 1)[1]) for w in workers}
    assert not any(_alive(pid) for pid in pids), "a peer outlived the interrupted run"
    assert "Traceback" not in (out / ".workers" / "peer-1.log").read_text()

    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=400)
    assert done.returncode == 0, done.stderr[-2000:]
    study = optuna.load_study(study_name="scalesearch-grid-2x", storage=storage)
    evaluated = Counter(queue.key_of(t) for t in study.trials if queue.trial_outcome(t) in queue.FINAL)
    expected = {queue.item_key({"alpha": c.alpha, "beta": c.beta}, 0) for c in grid_candidates(2.0, 0.1)}
    assert set(evaluated) == expected and set(evaluated.values()) == {1}
    # Every trial trained with one thread, whichever worker ran it and however many were alive.
    shares = {t.user_attrs.get("threads") for t in study.trials if queue.trial_outcome(t) == "complete"}
    assert shares == {1}


def test_jobs_two_gives_every_candidate_the_accuracy_one_worker_gives_it(tmp_path, tiny_npz):
    def accuracies(jobs: str) -> dict:
        out = tmp_path / f"jobs{jobs}"
        cmd = [sys.executable, "-m", "scalesearch", "grid", "--budget", "2x", "--data", str(tiny_npz), "--out",
               str(out), "--epochs", "1", "--step", "0.15", "--tolerance", "0.2", "--seeds", "1", "--jobs", jobs]
        env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
        done_run = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=400)
        assert done_run.returncode == 0, done_run.stderr[-2000:]
        study = optuna.load_study(study_name="scalesearch-grid-2x", storage=f"sqlite:///{out / 'study.db'}")
        done = [t for t in study.trials if queue.trial_outcome(t) == "complete"]
        trained = Counter((t.user_attrs["network"], t.user_attrs["seed"]) for t in done
                          if "same_network_as" not in t.user_attrs)
        assert set(trained.values()) == {1}, f"a network was trained twice with one seed: {trained}"
        # One console for the run: every settled trial has its line, whichever worker settled it.
        shown = {int(n) for n in re.findall(r"^trial +(\d+) ", done_run.stdout + done_run.stderr, re.M)}
        settled = {t.number for t in study.trials if queue.trial_outcome(t) in queue.FINAL}
        assert settled <= shown, f"trials settled but never shown: {sorted(settled - shown)}"
        # The bar's last state (printed once, on stop, when stderr is a file) counts the items the other
        # worker settled while this one waited: it read 5/6 when a peer finished the last one.
        done_of_total = re.findall(r"^grid 2x .* (\d+)/(\d+) ", done_run.stderr, re.M)
        assert done_of_total and done_of_total[-1][0] == done_of_total[-1][1], done_run.stderr[-1500:]
        return {queue.key_of(t): t.value for t in done}

    one, two = accuracies("1"), accuracies("2")
    assert one and one == two


def test_devices_plan_gives_each_gpu_its_workers_and_the_first_to_the_first_process():
    from scalesearch.engine.peers import device_plan

    assert device_plan(jobs=3, devices=None, jobs_per_device=1) == [None, None, None]
    assert device_plan(jobs=1, devices=[0, 1], jobs_per_device=2) == ["0", "1", "0", "1"]
    assert device_plan(jobs=1, devices=[3], jobs_per_device=1) == ["3"]


def test_devices_count_within_a_mask_already_set_as_cuda_numbers_them():
    # A SLURM job that was given GPUs 4 and 5 sees them as devices 0 and 1.
    from scalesearch.engine.peers import device_plan
    from scalesearch.errors import UserError

    assert device_plan(jobs=1, devices=[1, 0], jobs_per_device=1, mask="4,5") == ["5", "4"]
    assert device_plan(jobs=1, devices=[1], jobs_per_device=2, mask="GPU-aa, GPU-bb") == ["GPU-bb", "GPU-bb"]
    with pytest.raises(UserError, match="shows 2 device"):
        device_plan(jobs=1, devices=[2], jobs_per_device=1, mask="4,5")
    with pytest.raises(UserError, match="no CUDA device is available"):
        device_plan(jobs=1, devices=[0], jobs_per_device=1, mask="")


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs the refusal of a machine without CUDA")
@pytest.mark.parametrize("mask", ["4,5", None])
def test_devices_from_the_api_leave_the_callers_environment_as_they_found_it(tmp_path, tiny_npz, monkeypatch, mask):
    import scalesearch
    from scalesearch.errors import UserError

    if mask is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", mask)
    with pytest.raises(UserError, match="no CUDA device is available"):
        scalesearch.grid(budget=2.0, data=str(tiny_npz), out=tmp_path / "o", devices=[1], device="auto")
    assert os.environ.get("CUDA_VISIBLE_DEVICES") == mask


@pytest.mark.parametrize("args, needle", [
    (["--devices", "0,0"], "listed twice"),
    (["--devices", "gpu0"], "CUDA device numbers"),
    (["--devices", "0", "--jobs", "2"], "--jobs-per-device instead of --jobs"),
    (["--devices", "0", "--device", "cpu"], "names CUDA devices"),
    (["--jobs", "0"], "from 1 to 256"),
    (["--jobs-per-device", "0", "--devices", "0"], "from 1 to 256"),
])
def test_bad_worker_options_are_one_line_and_exit_2(cli, tmp_path, tiny_npz, args, needle):
    code, _, err = cli("grid", "--budget", "2x", "--data", tiny_npz, "--out", tmp_path / "o", *args)
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and needle in lines[0], err
    assert not (tmp_path / "o" / "trials.csv").exists()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_devices_without_cuda_is_refused_before_any_work(cli, tmp_path, tiny_npz, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # the command sets it in this process: undone after the test
    code, _, err = cli("grid", "--budget", "2x", "--data", tiny_npz, "--out", tmp_path / "o", "--devices", "0,1",
                       "--device", "auto")
    assert code == 2 and "no CUDA device is available" in err and "Traceback" not in err


def test_jobs_auto_starts_no_peer_for_cores_that_workers_started_by_hand_already_use(tmp_path, monkeypatch):
    # The same command started again in a second terminal must not add another full set of workers.
    import scalesearch.engine.local_workers as local_workers
    from scalesearch.engine.peers import PeerGroup as _Jobs

    monkeypatch.setattr(local_workers, "cpu_cores", lambda: 2)
    said: list[str] = []
    jobs = _Jobs("auto", said.append, device="cpu")
    assert jobs.count == 1  # alone, auto would start one peer for the second core
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with LocalWorkers(tmp_path):
            assert jobs.on_open(tmp_path) == [] and jobs.peers is None
    finally:
        holder.kill()
        holder.wait()
    assert "1 other worker(s) of this run already on this machine; starting 0 more" in said[0]


API_GRID = """
import sys
import scalesearch
try:
    result = scalesearch.grid(budget=2.0, data=sys.argv[1], out=sys.argv[2], epochs=1, step=0.1, tolerance=0.2,
                              seeds=1, device="cpu", jobs=2)
except KeyboardInterrupt:
    sys.exit(130)
print("complete" if result.complete else "incomplete")
"""


@pytest.mark.skipif(cpu_cores() < 2, reason="a second worker needs a second core")
def test_the_python_api_starts_and_stops_its_workers_on_sigterm_like_the_command(tmp_path, tiny_npz):
    """`scalesearch.grid(..., jobs=2)` from Python: peers started by the engine, a SIGTERM to the caller stops
    them, the files are written, and the same call resumes to every point exactly once."""
    out = tmp_path / "api-run"
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "SCALESEARCH_JOBS")}
    cmd = [sys.executable, "-c", API_GRID, str(tiny_npz), str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env)
    storage = f"sqlite:///{out / 'study.db'}"
    workers = _two_workers_busy(storage)
    assert len(workers) >= 2, "the engine never started a second worker"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=150)
    assert proc.returncode == 130 and "Traceback" not in err, err[-2000:]
    assert not any(_alive(int(w.rsplit(":", 1)[1])) for w in workers), "a peer outlived the interrupted call"
    assert (out / "trials.csv").exists() and "Trial" not in err  # no Optuna INFO lines from the API either

    done = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=400)
    assert done.returncode == 0 and done.stdout.strip() == "complete", done.stderr[-2000:]
    study = optuna.load_study(study_name="scalesearch-grid-2x", storage=storage)
    evaluated = Counter(queue.key_of(t) for t in study.trials if queue.trial_outcome(t) in queue.FINAL)
    expected = {queue.item_key({"alpha": c.alpha, "beta": c.beta}, 0) for c in grid_candidates(2.0, 0.1)}
    assert set(evaluated) == expected and set(evaluated.values()) == {1}


def test_a_peer_started_with_one_gpu_in_view_plans_nothing(monkeypatch):
    # Defect: with --devices 0,1 the second worker sees only its GPU (CUDA_VISIBLE_DEVICES="1"), yet made the
    # same call with devices=[0, 1]; counting within its mask it found no device 1 and refused to run.
    from scalesearch.engine.peers import PEER_ENV, PeerGroup

    monkeypatch.setenv(PEER_ENV, "1")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    group = PeerGroup(1, lambda _: None, devices=[0, 1], jobs_per_device=1, device="cuda")
    assert group.first_devices is None and group.count == 0
