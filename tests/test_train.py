"""The proxy trainer: optimizer against torch's, learning, determinism, and its failure paths."""

import pytest
import torch
from torch import nn

from scalesearch.data import ImageData
from scalesearch.families import get_family
from scalesearch.train import GraphSafeAdamW, GraphSafeSGD, TrainConfig, build_and_train, lr_schedule, to_device, train_proxy


def colour_data(n_train=600, n_val=200, size=16, seed=0):
    """A task a working trainer must learn fast: the class is the brightest colour channel."""
    g = torch.Generator().manual_seed(seed)

    def make(n):
        x = (torch.rand(n, 3, 1, 1, generator=g) * 255).expand(n, 3, size, size).to(torch.uint8).contiguous()
        return x, x[:, :, 0, 0].float().argmax(1)

    (a, b), (c, d) = make(n_train), make(n_val)
    return ImageData("colour", a, b, c, d, 3)


CPU = torch.device("cpu")
FAST = TrainConfig(epochs=3, batch_size=32, lr=0.05)


def test_lr_schedule_warms_up_then_decays_to_zero():
    s = lr_schedule(100, 0.4, 0.1)
    assert s.shape == (100,)
    assert s[0] == pytest.approx(0.04)
    assert s[9] == pytest.approx(0.4)
    assert s.max() == pytest.approx(0.4)
    assert s[-1] < 0.001
    assert torch.all(s[10:-1] >= s[11:])


def test_graph_safe_adamw_matches_torch_adamw():
    torch.manual_seed(0)
    # No conv bias before the norm: its gradient is rounding noise, which Adam would amplify into chaos.
    ours = nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2))
    ours(torch.zeros(1, 3, 6, 6))
    ref = type(ours)(*[m for m in __import__("copy").deepcopy(ours)])
    lr = torch.tensor(0.01)
    opt = GraphSafeAdamW(ours, lr, weight_decay=0.05)
    decay = [p for p in ref.parameters() if p.ndim > 1]
    rest = [p for p in ref.parameters() if p.ndim <= 1]
    torch_opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": rest, "weight_decay": 0.0}],
                                  lr=0.01, betas=(0.9, 0.999), eps=1e-8)
    for step in range(5):
        x = torch.randn(5, 3, 6, 6)
        for model in (ours, ref):
            model.zero_grad(set_to_none=True)
            model(x).square().mean().backward()
        opt.step()
        torch_opt.step()
        lr.fill_(0.01 / (step + 2))  # the schedule changes lr between steps, as the trainer's table does
        for g in torch_opt.param_groups:
            g["lr"] = 0.01 / (step + 2)
    for a, b in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_graph_safe_sgd_matches_torch_sgd():
    torch.manual_seed(0)
    ours = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.LazyLinear(2))
    ours(torch.zeros(1, 3, 6, 6))
    ref = type(ours)(*[m for m in __import__("copy").deepcopy(ours)])
    lr = torch.tensor(0.1)
    opt = GraphSafeSGD(ours, lr, momentum=0.9, weight_decay=0.01)
    decay = [p for p in ref.parameters() if p.ndim > 1]
    rest = [p for p in ref.parameters() if p.ndim <= 1]
    torch_opt = torch.optim.SGD([{"params": decay, "weight_decay": 0.01}, {"params": rest, "weight_decay": 0.0}],
                                lr=0.1, momentum=0.9, nesterov=True)
    for step in range(4):
        x = torch.randn(5, 3, 6, 6)
        for model in (ours, ref):
            model.zero_grad(set_to_none=True)
            model(x).square().mean().backward()
        opt.step()
        torch_opt.step()
        lr.fill_(0.1 / (step + 2))
        for g in torch_opt.param_groups:
            g["lr"] = 0.1 / (step + 2)
    for a, b in zip(ours.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_trainer_learns_an_easy_task_and_is_deterministic():
    splits = to_device(colour_data(), 16, CPU)
    a, b = (build_and_train("efficientnet", width_mult=0.25, depth_mult=0.25, splits=splits, num_classes=3,
                            config=FAST, seed=1) for _ in range(2))
    assert a.status == "ok" and a.epochs == 3
    assert a.accuracy > 0.6  # chance is 1/3
    assert a.val_history == b.val_history
    assert a.images_per_second > 0 and not a.cuda_graph


def test_diverging_run_is_recorded_not_raised():
    splits = to_device(colour_data(), 16, CPU)
    result = build_and_train("efficientnet", width_mult=0.25, depth_mult=0.25, splits=splits, num_classes=3,
                             config=TrainConfig(epochs=2, batch_size=32, lr=1e12, warmup_fraction=0.01), seed=0)
    assert result.status == "diverged"
    assert "loss" in result.reason and result.accuracy is None


class _ExhaustsMemory(nn.Module):
    """Forces the out-of-memory path: a real model whose forward hits the allocator's error."""

    def __init__(self):
        super().__init__()
        self.inner = get_family("efficientnet").build(0.25, 0.25, 3)

    def forward(self, x):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")


def test_out_of_memory_is_recorded_not_raised():
    splits = to_device(colour_data(), 16, CPU)
    result = train_proxy(_ExhaustsMemory(), splits, FAST, seed=0)
    assert result.status == "oom"
    assert "out of memory" in result.reason


def test_other_errors_still_raise():
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.p = nn.Parameter(torch.zeros(1))

        def forward(self, x):
            raise ValueError("a bug, not a resource problem")

    with pytest.raises(ValueError):
        train_proxy(Broken(), to_device(colour_data(), 16, CPU), FAST)


def test_epoch_callback_can_prune():
    seen = []

    def on_epoch(epoch, acc):
        seen.append((epoch, acc))
        return True

    result = build_and_train("efficientnet", width_mult=0.25, depth_mult=0.25,
                             splits=to_device(colour_data(), 16, CPU), num_classes=3, config=FAST, seed=0,
                             on_epoch=on_epoch)
    assert result.status == "pruned" and result.epochs == 1 and len(seen) == 1


def test_train_config_validation():
    with pytest.raises(ValueError):
        TrainConfig(epochs=0)
    with pytest.raises(ValueError):
        TrainConfig(lr=0)


@pytest.mark.slow
def test_train_with_run_seed_retrains_a_grid_trial_bit_for_bit(cli, tmp_path, tiny_npz):
    """`scalesearch train --run-seed R --seed I` is seed index I of a run made with --seed R: same data and split
    (from R), same initialisation and order (R * 1000 + I). Before, `train --seed S` matched a grid trial only for
    run seed 0 and seed index 0."""
    import json

    import optuna

    out = tmp_path / "run"
    code, _, err = cli("grid", "--budget", "2x", "--step", "0.2", "--data", tiny_npz, "--epochs", "1", "--seeds", "2",
                       "--tolerance", "0.25", "--seed", "3", "--out", out, "--device", "cpu")
    assert code == 0, err
    study = optuna.load_study(study_name="scalesearch-grid-2x", storage=f"sqlite:///{out / 'study.db'}")
    trained = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE
               and "same_network_as" not in t.user_attrs and t.user_attrs.get("seed") == 1]
    assert trained, "no trial trained seed index 1"
    trial = trained[0]
    code, stdout, err = cli("train", "--width-mult", trial.user_attrs["width_mult"], "--depth-mult",
                            trial.user_attrs["depth_mult"], "--resolution", trial.user_attrs["resolution"],
                            "--data", tiny_npz, "--epochs", "1", "--seed", "1", "--run-seed", "3", "--json",
                            "--device", "cpu")
    assert code == 0, err
    result = json.loads(stdout)
    assert result["accuracy"] == trial.value and result["test_accuracy"] == trial.user_attrs["test_accuracy"]
    # Without --run-seed the same seed is another experiment (data seed 1, initialisation seed 1).
    code, stdout, _ = cli("train", "--width-mult", trial.user_attrs["width_mult"], "--depth-mult",
                          trial.user_attrs["depth_mult"], "--resolution", trial.user_attrs["resolution"],
                          "--data", tiny_npz, "--epochs", "1", "--seed", "1", "--json", "--device", "cpu")
    other = json.loads(stdout)
    assert code == 0 and other["data_fingerprint"] != result["data_fingerprint"]  # another split of the file
