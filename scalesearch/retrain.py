"""`scalesearch train`: one network trained as a study trains its candidates, from coefficients or explicit
dimensions (a trial retrained, or a shape tried by hand), to a trained result."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import UserError
from .families.registry import DEFAULT_FAMILY
from .scaling import Coefficients


@dataclass(frozen=True, kw_only=True)
class TrainingPlan:
    depth_mult: float
    width_mult: float
    resolution: int
    device: object
    proxy: object
    data: str
    coefficients: Coefficients | None


def plan_training(*, alpha: float | None = None, beta: float | None = None, gamma: float | None = None,
                  width_mult: float | None = None, depth_mult: float | None = None, resolution: int | None = None,
                  device: str = "auto", data: str = "synthetic", epochs: int | None = None,
                  family: str = DEFAULT_FAMILY, batch_size: int | None = None, lr: float | None = None) -> TrainingPlan:
    from .proxy import proxy_for
    from .expansion.sources import coefficients_from_options
    from .host import resolve_device

    if any(v is not None for v in (alpha, beta, gamma)) and \
            any(v is not None for v in (width_mult, depth_mult, resolution)):
        raise UserError("give --alpha/--beta/--gamma or --width-mult/--depth-mult/--resolution, not both")
    coeffs = coefficients_from_options(alpha, beta, gamma)
    dev = resolve_device(device)
    from .config import check_proxy_knobs

    check_proxy_knobs(width=None, depth=None, resolution=None, batch_size=batch_size, lr=lr)
    proxy = proxy_for(dev.type, family=family).with_overrides(epochs=epochs, batch_size=batch_size, lr=lr)
    if coeffs is not None and coeffs.scales_down:  # the proxy a FLOP grid at that budget scaled down from
        proxy = proxy.for_budget(coeffs.flops_factor)
    if coeffs is not None:
        dims = proxy.scaled(coeffs)
        depth, width, res = dims.depth_mult, dims.width_mult, dims.resolution
    else:
        width = width_mult if width_mult is not None else proxy.width_mult
        depth = depth_mult if depth_mult is not None else proxy.depth_mult
        res = resolution if resolution is not None else proxy.resolution
    return TrainingPlan(depth_mult=depth, width_mult=width, resolution=res, device=dev, proxy=proxy, data=data,
                         coefficients=coeffs)


def train_one(plan: TrainingPlan, family: str, seed: int, console, show_progress: bool = True,
              threads: int | None = None, *, run_seed: int | None = None, train_images: int | None = None,
              val_images: int | None = None, data_options: dict | None = None) -> dict:
    """Train the plan's network once, with data, split and initialisation from `seed`.

    With `run_seed`, retrain seed index `seed` of a grid or search run made with `--seed run_seed`: the data and
    split come from `run_seed`, the initialisation and shuffling from `training_seed(run_seed, seed)`, exactly
    as the run's trial had them (with the run's --train-images/--val-images, the same subset). Bit for bit on the CPU when the thread count is the run's (default 1, as a
    grid trial trains; OMP_NUM_THREADS set by the user is respected) and the network is the trial's
    (`--width-mult/--depth-mult/--resolution` from its trials.csv row).
    """
    from .config import training_seed

    data_seed = seed if run_seed is None else run_seed
    init_seed = seed if run_seed is None else training_seed(run_seed=run_seed, seed_index=seed)
    import os

    import torch
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from .cost import measure_cost
    from .data import load_data
    from .families import get_family
    from .families.user import probe_family
    from .train import build_and_train, to_device

    data = load_data(plan.data, seed=data_seed, device=plan.device, **plan.proxy.data_options(),
                     **(data_options or {})) \
        .subsets(train=train_images, val=val_images, seed=data_seed)
    probe_family(get_family(family), multipliers=[(plan.depth_mult, plan.width_mult)], resolution=plan.resolution,
                 num_classes=data.num_classes)
    cost = measure_cost(family, width_mult=plan.width_mult, depth_mult=plan.depth_mult, resolution=plan.resolution,
                        num_classes=data.num_classes)
    if plan.device.type == "cpu" and not os.environ.get("OMP_NUM_THREADS"):
        from .engine.local_workers import DEFAULT_CPU_THREADS

        torch.set_num_threads(threads or DEFAULT_CPU_THREADS)
    splits = to_device(data, plan.resolution, plan.device)
    config = plan.proxy.train
    with Progress(TextColumn("training"), BarColumn(), TextColumn("epoch {task.completed}/{task.total}"),
                  TextColumn("{task.description}"), TimeElapsedColumn(), console=console, transient=True,
                  disable=not show_progress or console is None or not console.is_interactive) as progress:
        task = progress.add_task("", total=config.epochs)

        def on_epoch(epoch: int, acc: float) -> bool:
            progress.update(task, completed=epoch + 1, description=f"val {acc:.4f}")
            return False

        result = build_and_train(family, width_mult=plan.width_mult, depth_mult=plan.depth_mult, splits=splits,
                                 num_classes=data.num_classes, config=config, seed=init_seed, on_epoch=on_epoch)
    return {
        "status": result.status, "accuracy": result.accuracy, "test_accuracy": result.test_accuracy,
        "val_history": result.val_history, "num_classes": data.num_classes, "data": data.name,
        "data_fingerprint": data.fingerprint, "train_images": len(data.train_labels),
        "val_images": len(data.val_labels), "width_mult": plan.width_mult, "depth_mult": plan.depth_mult,
        "resolution": plan.resolution, "flops": cost.flops, "params": cost.params, "epochs": result.epochs,
        "seconds": round(result.seconds, 3), "train_seconds": round(result.train_seconds, 3),
        "warmup_seconds": round(result.warmup_seconds, 3), "eval_seconds": round(result.eval_seconds, 3),
        "images_per_second": round(result.images_per_second, 1), "device": str(plan.device),
        "cuda_graph": result.cuda_graph, "reason": result.reason, "seed": seed,
        **({"run_seed": run_seed} if run_seed is not None else {}),
        **({"threads": torch.get_num_threads()} if plan.device.type == "cpu" else {}),
    }
