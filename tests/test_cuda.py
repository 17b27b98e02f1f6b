"""The GPU path: whole-step CUDA graph capture, replay against eager, the schedule inside the graph, fallback.

Skipped where no CUDA device is visible (the CPU suite covers the same step function run eagerly).
`benchmarks/gpu_check.sh` runs this file first on a GPU machine.
"""

import copy
import logging

import pytest
import torch
from torch import nn

from scalesearch.data import synthetic_data
from scalesearch.families import get_family
from scalesearch.train import TrainConfig, TrainingStep, build_and_train, to_device, train_proxy

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

CUDA = torch.device("cuda")
# No augmentation, dropout or label smoothing: the step is then a pure function of weights and batch, so
# eager and replayed steps can be compared number for number (up to bf16 rounding).
PLAIN = TrainConfig(epochs=1, batch_size=64, lr=0.05, augment=False, dropout=0.0, label_smoothing=0.0,
                    weight_decay=5e-4)


def _model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    model = get_family("efficientnet").build(width_mult=0.5, depth_mult=0.5, num_classes=6, dropout=0.0,
                                             stochastic_depth=0.0)
    return model.to(CUDA).to(memory_format=torch.channels_last).train()


def _batches(count: int, resolution: int = 32, batch: int = 64):
    data = synthetic_data(count * batch, 64, 0, 64, seed=1, device=CUDA)
    splits = to_device(data, resolution, CUDA)
    return [(splits.train_x[i * batch:(i + 1) * batch], splits.train_y[i * batch:(i + 1) * batch])
            for i in range(count)]


def _step(model: nn.Module, total_steps: int) -> TrainingStep:
    return TrainingStep(model, PLAIN, sample_shape=(3, 32, 32), batch=64, total_steps=total_steps, device=CUDA,
                        channels_last=True)


def test_capture_succeeds_and_replay_matches_the_eager_step():
    warm, replays = 3, 5
    batches = _batches(warm + replays)
    eager_model = _model()
    graph_model = copy.deepcopy(eager_model)
    eager, graph = _step(eager_model, warm + replays), _step(graph_model, warm + replays)

    assert graph.capture(batches[:warm]) and graph.graph is not None
    eager_losses, graph_losses = [], []
    for i, (x, y) in enumerate(batches):
        eager.loss_sum.zero_()
        eager.load(x, y)
        eager.run()
        eager_losses.append(eager.loss_sum.item())
        if i >= warm:  # the graph's own warm-up already trained on the first batches
            graph.loss_sum.zero_()
            graph.load(x, y)
            graph.run()
            graph_losses.append(graph.loss_sum.item())
    torch.cuda.synchronize()
    # bf16 autocast: each step is the same arithmetic, rounding may differ in the last bits.
    torch.testing.assert_close(torch.tensor(graph_losses), torch.tensor(eager_losses[warm:]), rtol=2e-2, atol=1e-3)
    for (name, p_eager), p_graph in zip(eager_model.named_parameters(), graph_model.parameters()):
        torch.testing.assert_close(p_graph, p_eager, rtol=5e-2, atol=5e-3, msg=lambda m: f"{name}: {m}")
    assert not torch.equal(eager_model.state_dict()["classifier.1.weight"],
                           _model().state_dict()["classifier.1.weight"]), "the steps changed nothing"


def test_the_learning_rate_schedule_advances_inside_the_graph():
    warm, replays = 2, 6
    batches = _batches(warm + 1)
    step = _step(_model(), warm + replays)
    assert step.capture(batches[:warm])
    assert int(step.step_index) == warm
    x, y = batches[warm]
    step.load(x, y)
    seen = []
    for _ in range(replays):
        step.run()
        seen.append(step.lr.item())  # the graph wrote it: no host code ran between replays
    assert int(step.step_index) == warm + replays
    expected = step.lr_table[warm:warm + replays].tolist()
    assert seen == pytest.approx(expected, rel=1e-6)
    assert len(set(seen)) == replays, "the learning rate must change from step to step"


class _SyncsOnTheHost(nn.Module):
    """A user network whose forward reads a value back to the host: fine eagerly, impossible to capture."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Linear(8, 6)

    def forward(self, x):
        x = self.conv(x)
        if x.mean().item() > 1e9:  # never true; the .item() is what matters
            x = x * 0
        return self.head(x.mean((2, 3)))


def test_a_failed_capture_falls_back_to_eager_with_one_log_line(caplog):
    data = synthetic_data(512, 128, 0, 32, seed=2, device=CUDA)
    config = TrainConfig(epochs=2, batch_size=64, lr=0.05)
    with caplog.at_level(logging.WARNING, logger="scalesearch.train"):
        result = train_proxy(_SyncsOnTheHost(), to_device(data, 32, CUDA), config, seed=0)
    assert result.status == "ok" and not result.cuda_graph and result.accuracy is not None
    lines = [r.getMessage() for r in caplog.records if "CUDA graph capture failed" in r.getMessage()]
    assert len(lines) == 1 and "training this candidate eagerly" in lines[0]
    # The process's CUDA state is usable afterwards: random numbers on the default stream.
    assert torch.cuda.current_stream() == torch.cuda.default_stream()
    assert torch.rand(1, device="cuda").item() >= 0


def test_graph_and_eager_training_reach_the_same_accuracy():
    data = synthetic_data(4096, 1024, 0, 80, seed=0, device=CUDA)
    splits = to_device(data, 48, CUDA)
    config = TrainConfig(epochs=3, batch_size=256, lr=0.05)
    runs = {graph: build_and_train("efficientnet", width_mult=0.5, depth_mult=0.5, splits=splits, num_classes=6,
                                   config=TrainConfig(**{**config.__dict__, "cuda_graph": graph}), seed=0)
            for graph in (True, False)}
    assert runs[True].cuda_graph and not runs[False].cuda_graph
    assert runs[True].status == runs[False].status == "ok"
    assert abs(runs[True].accuracy - runs[False].accuracy) <= 0.03, (runs[True].accuracy, runs[False].accuracy)
    assert runs[True].accuracy > 1 / 6 + 0.1, "the captured step must learn"


def test_embedded_data_drawn_on_the_gpu_is_reproducible_and_matches_its_cpu_recipe():
    a = synthetic_data(600, 100, 100, 64, seed=3, device=CUDA)
    b = synthetic_data(600, 100, 100, 64, seed=3, device=CUDA)
    assert a.train_images.device.type == "cuda" and a.fingerprint == b.fingerprint
    cpu = synthetic_data(600, 100, 100, 64, seed=3)
    assert a.fingerprint != cpu.fingerprint  # another generator, the same recipe:
    counts = torch.bincount(a.train_labels.cpu(), minlength=6).float()
    assert counts.min() > 60  # six classes, about 100 each
    mean_gpu, mean_cpu = a.train_images.float().mean().item(), cpu.train_images.float().mean().item()
    assert abs(mean_gpu - mean_cpu) < 5  # same pixel statistics (mean ~ 128 on 0-255)
