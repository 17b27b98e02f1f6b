"""One work item: build the candidate at the budget (resolution matched), train it with one seed, record it."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field

import optuna

from ..budget import MatchedCandidate, Reference, build_matched, resolution_cap
from ..config import SearchConfig, check_cap_above_base, training_seed
from ..scaling import Coefficients
from .interrupts import interruptible, shielded
from .queue import fail_stale_trials
from .strategies import Member, strategy_class

log = logging.getLogger("scalesearch.engine")


def record_network(trial: optuna.Trial, m: MatchedCandidate) -> None:
    """What was built and what it costs, on the trial (trials.csv and reports read these)."""
    for key, value in dict(alpha_eff=m.alpha_eff, beta_eff=m.beta_eff, gamma_eff=m.gamma_eff,
                           depth_mult=m.depth_mult, width_mult=m.width_mult, resolution=m.resolution,
                           flops=m.flops, flops_ratio=m.flops_ratio, params=m.params, network=m.architecture,
                           activations=m.activations, cost_ratio=m.cost_ratio).items():
        trial.set_user_attr(key, value)
    if m.latency_ms is not None:
        trial.set_user_attr("latency_ms", m.latency_ms)
        trial.set_user_attr("latency_spread", m.latency_spread)
    if m.under_budget:
        trial.set_user_attr("under_budget", True)


def _family_source(family: str) -> dict:
    """A user family's source hash: resuming with a changed model file is refused."""
    from ..families import get_family

    digest = get_family(family).source_hash
    return {"family_source": f"sha256:{digest}"} if digest else {}


def _trains_network(t, network: str, seed_index: int) -> bool:
    """Whether trial `t` trains (not reuses) `network` with seed `seed_index`."""
    return (t.user_attrs.get("network") == network and int(t.user_attrs.get("seed", 0)) == seed_index
            and "same_network_as" not in t.user_attrs)


@contextlib.contextmanager
def _main_not_reimported():
    """Spawned processes import the caller's main script again unless it is hidden: a user's script that calls
    scalesearch.grid(...) at top level would run again in every one of them. They only need build_matched."""
    import sys

    main = sys.modules.get("__main__")
    saved = {k: main.__dict__[k] for k in ("__file__", "__spec__") if main is not None and k in main.__dict__}
    try:
        if main is not None:
            main.__dict__.pop("__file__", None)
            main.__dict__["__spec__"] = None
        yield
    finally:
        if main is not None:
            main.__dict__.update(saved)
            if "__file__" not in saved:
                main.__dict__.pop("__file__", None)


def _measuring_process() -> None:
    """A budget-matching process: one thread (the pool fills the cores), and Ctrl-C is the parent's to handle
    (the parent stops the pool; a child's KeyboardInterrupt would print a traceback on the user's console)."""
    import signal

    import torch

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(1)


def _reject(trial: optuna.Trial, reason: str) -> None:
    """End the trial untrained (raises TrialPruned), with the reason recorded for trials.csv and reports."""
    trial.set_user_attr("reason", reason)
    trial.set_user_attr("outcome", "rejected")
    raise optuna.TrialPruned(reason)


class CandidateFailed(Exception):
    """A trial ended without a usable accuracy (diverged, out of memory, an error): recorded, the run goes on."""


@dataclass
class Experiment:
    """What every trial of one run shares: config, proxy, data on the host, the baseline's measured cost."""

    config: SearchConfig
    proxy: object
    data: object
    device: object
    reference: Reference  # the φ = 0 proxy as measured, and the metric the budget holds on
    fingerprint: str  # of the data, computed once
    notes: list[str] = field(default_factory=list)  # what preparation found, said once the study has opened
    refine: bool = False  # a φ = 2 round decides what φ = 1 left open (strategies.py); --refine/--no-refine
    _candidates: dict = field(default_factory=dict)
    _splits: object = None  # SplitsCache, made on first use

    @classmethod
    def prepare(cls, config: SearchConfig) -> "Experiment":
        from ..cost import measure_cost
        from ..data import load_data
        from ..families import get_family
        from ..families.user import probe_family
        from ..proxy import proxy_for
        from ..host import resolve_device

        strategy = strategy_class(config.mode)
        strategy.check(config)  # the mode's own checks, before any data are read
        device = resolve_device(config.device)
        proxy = proxy_for(device.type, family=config.family).with_overrides(**config.proxy_options()) \
            .for_budget(config.budget)
        refine = config.refines_on(device.type)
        if config.max_params is not None and not get_family(config.family).is_user:
            # Before the data are read: with one class the proxy has the fewest parameters it can have.
            least = measure_cost(config.family, width_mult=proxy.width_mult, depth_mult=proxy.depth_mult,
                                 resolution=proxy.resolution, num_classes=1).params
            check_cap_above_base(config.max_params, least, base="proxy", at_least=True,
                                 detail=f"with one class; width {proxy.width_mult:g}, depth {proxy.depth_mult:g}",
                                 consequence="no candidate could be trained")
        largest = proxy.refine_resolution(config.budget) if refine else None  # image files decoded that large
        data = load_data(config.data, seed=config.seed, device=device, **proxy.data_options(largest_resolution=largest),
                         **config.data_options()).subsets(train=config.train_images, val=config.val_images,
                                                          seed=config.seed)
        multipliers = strategy.extreme_multipliers(config, proxy)
        if refine:  # the φ = 2 member of the largest: each multiplier's step taken twice
            multipliers += [(d * d / proxy.depth_mult, w * w / proxy.width_mult) for d, w in multipliers[1:]]
        probe_family(get_family(config.family), multipliers=multipliers, resolution=proxy.resolution,
                     num_classes=data.num_classes)
        base = measure_cost(config.family, width_mult=proxy.width_mult, depth_mult=proxy.depth_mult,
                            resolution=proxy.resolution, num_classes=data.num_classes)
        check_cap_above_base(config.max_params, base.params, base="proxy", consequence="no candidate could be trained",
                             detail=f"width {proxy.width_mult:g}, depth {proxy.depth_mult:g}, {data.num_classes} classes")
        reference = Reference.measure(config.family, depth_mult=proxy.depth_mult, width_mult=proxy.width_mult,
                                      resolution=proxy.resolution, num_classes=data.num_classes,
                                      metric=config.metric)
        fingerprint = data.fingerprint
        skipped = len(getattr(data, "skipped_files", []) or [])
        notes = [f"data {data.name}: {subset_text(data)}, {data.num_classes} classes, fingerprint {fingerprint}"
                 + (f"; {skipped} unreadable image file(s) skipped" if skipped else ""),
                 f"proxy ({proxy.name}): width {proxy.width_mult:g}, depth {proxy.depth_mult:g}, "
                 f"{proxy.resolution}px = {base.flops / 1e6:.2f} M multiply-adds, {base.activations / 1e6:.3f} M "
                 f"activations, {base.params:,} parameters"
                 + (f", {reference.value:.3f} ms" if config.metric.name == "latency" else "")
                 + f"; {proxy.train.epochs} epochs, seeds {config.seeds_label(proxy)} per candidate on {device.type}",
                 f"budget: {config.budget_label} the proxy's {config.metric.label}, ±{config.tolerance:.0%}; "
                 f"nominal γ from {config.metric.law.text} = {config.budget:g}"]
        if config.mode in ("grid", "search"):
            why = {True: "--refine", False: "--no-refine"}.get(config.refine, f"the {device.type.upper()} default")
            notes.append(f"refinement {'on' if refine else 'off'} ({why})"
                         + (": what φ = 1 leaves open is decided by the φ = 2 members, at "
                            f"{config.budget_label}² (images up to {largest} px)" if refine else
                            ": the answer is "
                            "decided at φ = 1"))
        return cls(config, proxy, data, device, reference, fingerprint, notes, refine=refine)

    def identity(self) -> dict:
        """What a resumed study must have been run with: anything that changes what a trial measures (the
        strategy adds what it searches, see strategies.Strategy.identity)."""
        cfg, proxy = self.config, self.proxy
        subset = {k: v for k, v in (("train_images", cfg.train_images), ("val_images", cfg.val_images)) if v}
        return {**subset,
            "budget": cfg.budget, "tolerance": cfg.tolerance, **cfg.metric.identity(),
            **({"max_params": cfg.max_params} if cfg.max_params is not None else {}),
            "family": cfg.family, **_family_source(cfg.family), "seed": cfg.seed, "seeds": cfg.seeds_label(proxy),
            **({"refine": True} if self.refine else {}),
            "epochs": proxy.train.epochs, "data": self.fingerprint,
            "proxy": f"{proxy.name} (width {proxy.width_mult:g}, depth {proxy.depth_mult:g}, "
                     f"{proxy.resolution}px, batch {proxy.train.batch_size}, lr {proxy.train.lr:g})",
        }

    def _matching(self, member: Member) -> dict:
        """build_matched's arguments for `member`."""
        c, phi = member.coefficients, member.phi
        dims = self.proxy.scaled(Coefficients(c.alpha**phi, c.beta**phi, c.gamma**phi))
        return dict(ref=self.reference, depth_mult=dims.depth_mult, width_mult=dims.width_mult,
                    target_ratio=self.config.budget**phi, start_resolution=dims.resolution,
                    tolerance=self.config.tolerance,
                    highest=resolution_cap(self.config.metric, self.proxy.resolution))

    def candidate(self, member: Member) -> MatchedCandidate:
        """The proxy scaled by (α, β)^φ, at the resolution whose measured cost is nearest budget^φ (or the
        closest below it, where none lands inside the tolerance)."""
        if member.key not in self._candidates:
            self._candidates[member.key] = build_matched(**self._matching(member))
        return self._candidates[member.key]

    def structure_key(self, member: Member) -> tuple:
        """What `member` builds before its resolution is matched (blocks and channels, or a user module tree's
        digest): points with equal keys are matched to one size and are one network. Cheap (no FLOP count), so
        a grid can say how many networks its points build before anything trains."""
        from ..families import get_family
        from ..families.structure import built_structure

        dims = self._matching(member)
        depth, width = dims["depth_mult"], dims["width_mult"]
        shape_of = get_family(self.config.family).built_shape
        if shape_of is not None:
            shape = shape_of(width_mult=width, depth_mult=depth)
            return member.phi, tuple(shape.repeats), tuple(shape.widths)
        built = built_structure(self.config.family, depth_mult=depth, width_mult=width,
                                num_classes=self.reference.num_classes, probe_resolution=self.reference.resolution)
        return member.phi, built.digest

    def premeasure(self, members: list[Member], *, processes: int) -> int:
        """Budget-match `members` in `processes` processes at once, before the first trial; returns how
        many were matched here.

        Only worth it where the host's cores would otherwise idle while a GPU trains: matching a candidate
        traces a full-width proxy at several resolutions with fvcore (about a second each, one core), which
        in a GPU grid is most of a trial's overhead. Results equal the serial ones (the same function).
        """
        from concurrent.futures import ProcessPoolExecutor
        from multiprocessing import get_context

        todo = [m for m in members if m.key not in self._candidates]
        if processes < 2 or len(todo) < 2:
            return 0
        from concurrent.futures.process import BrokenProcessPool

        pool = ProcessPoolExecutor(min(processes, len(todo)), mp_context=get_context("spawn"),
                                   initializer=_measuring_process)
        try:
            with interruptible(), _main_not_reimported():
                futures = [pool.submit(build_matched, **self._matching(m)) for m in todo]
                for m, future in zip(todo, futures):
                    self._candidates[m.key] = future.result()
        except BrokenProcessPool as exc:  # matched one at a time instead, as on the CPU
            log.warning("parallel budget matching failed (%s); matching each candidate when its trial comes", exc)
            return 0
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        return len(todo)

    @staticmethod
    def _trained_twin(trial: optuna.Trial, network: str | None, seed_index: int):
        """A completed trial of this study that trained the same network with the same seed, if any."""
        if network is None:
            return None
        return next((t for t in trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
                     if _trains_network(t, network, seed_index)), None)

    @staticmethod
    def _wait_for_running_twin(trial: optuna.Trial, network: str | None, seed_index: int,
                               poll_seconds: float = 2.0) -> None:
        """If another worker is training this very network with this seed, wait for its result instead of
        training it a second time beside it (with --jobs, twins from one grid row are often taken while the
        previous row's network still trains). A dead worker's trial is failed by the heartbeat check run here,
        which ends the wait; this worker then trains the network itself."""
        import time

        if network is None:
            return

        def running_twin() -> bool:
            fail_stale_trials(trial.study)
            # Only an earlier trial: two twins started at once must not wait for each other.
            return any(t.number < trial.number and _trains_network(t, network, seed_index)
                       for t in trial.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)))

        announced = False
        while running_twin():
            if not announced:
                log.info("trial %d: the same network is training in another worker; waiting for its result",
                         trial.number)
                announced = True
            with interruptible():
                time.sleep(poll_seconds)

    def splits(self, resolution: int):
        """The data resized to `resolution` on the device, kept for the next candidate built at that size."""
        from ..train import SplitsCache

        if self._splits is None:
            self._splits = SplitsCache(self.data, self.device)
        return self._splits.get(resolution)

    def evaluate(self, trial: optuna.Trial, member: Member, seed_index: int) -> float:
        """Measure, budget-check and train one seed. Raises TrialPruned (rejected/pruned) or CandidateFailed."""
        import time

        cfg, c = self.config, member.coefficients
        target = cfg.budget**member.phi
        started = time.perf_counter()
        with interruptible():  # measuring FLOPs touches no storage: Ctrl-C may stop it at once
            m = self.candidate(member)
        trial.set_user_attr("measure_seconds", round(time.perf_counter() - started, 3))
        for key, value in dict(alpha=c.alpha, beta=c.beta, gamma=c.gamma).items():
            trial.set_user_attr(key, value)
        if member.phi != 1:
            trial.set_user_attr("phi", member.phi)
        record_network(trial, m)
        # build_matched moved a network that cannot land inside the band below it (under_budget, recorded above);
        # only one over the band at every size is left here.
        if m.cost_ratio > target * (1 + cfg.tolerance):
            reason = (f"rejected: over {target:g}x ±{cfg.tolerance:.0%} at every resolution (no size brings the "
                      f"rounded network within the tolerance or below it); the closest is {m.resolution}px at a "
                      f"measured {cfg.metric.name} ratio of {m.cost_ratio:.3f}")
            _reject(trial, reason)
        if cfg.max_params is not None and m.params > cfg.max_params:
            _reject(trial, f"rejected: {m.params:,} parameters, over the --max-params cap of {cfg.max_params:,}")

        self._wait_for_running_twin(trial, m.architecture, seed_index)
        twin = self._trained_twin(trial, m.architecture, seed_index)
        if twin is not None:
            # Rounding can build the very same network from two grid points; with the same seed it trains
            # to the same numbers (training is deterministic per seed), so the result is reused, not redone.
            trial.set_user_attr("same_network_as", twin.number)
            trial.set_user_attr("reason", f"same network as trial {twin.number}: result reused")
            trial.set_user_attr("test_accuracy", twin.user_attrs.get("test_accuracy"))
            trial.set_user_attr("seconds", 0.0)
            trial.set_user_attr("outcome", "complete")
            return float(twin.value)

        return self.train_and_record(trial, m, seed_index)

    def train_and_record(self, trial: optuna.Trial, m: MatchedCandidate, seed_index: int) -> float:
        """Train network `m` with seed `seed_index` and record the outcome on the trial."""
        from ..train import build_and_train

        cfg = self.config

        def on_epoch(epoch: int, acc: float) -> bool:
            with shielded():  # a storage write inside training: Ctrl-C waits for it
                trial.report(acc, epoch + 1)  # the step is the resource used: epochs done
                return trial.should_prune()

        # Only the first seed reports to a pruner (extra seeds are for racing); without one nobody reads an
        # epoch's accuracy but the last, so the trainer skips the other evaluations.
        prunes = seed_index == 0 and cfg.pruner != "none"

        with interruptible():
            splits = self.splits(m.resolution)
            result = build_and_train(cfg.family, width_mult=m.width_mult, depth_mult=m.depth_mult,
                                     splits=splits, num_classes=self.data.num_classes,
                                     config=self.proxy.train,
                                     seed=training_seed(run_seed=cfg.seed, seed_index=seed_index),
                                     on_epoch=on_epoch if prunes else None)
        trial.set_user_attr("seconds", result.seconds)
        # Where a trial's time goes: the overhead is the trial's wall time less train_seconds.
        trial.set_user_attr("train_seconds", round(result.train_seconds, 3))
        trial.set_user_attr("warmup_seconds", round(result.warmup_seconds, 3))
        if result.status == "pruned":
            trial.set_user_attr("reason", result.reason)
            trial.set_user_attr("outcome", "pruned")
            raise optuna.TrialPruned(result.reason)
        if result.status != "ok":
            trial.set_user_attr("reason", f"{result.status}: {result.reason}")
            trial.set_user_attr("outcome", result.status)
            raise CandidateFailed(result.reason)
        trial.set_user_attr("test_accuracy", result.test_accuracy)
        trial.set_user_attr("outcome", "complete")
        return result.accuracy


def subset_text(data) -> str:
    """'5,000 of 50,000 train / 300 val images' (a subset said with what it was drawn from)."""
    def count(split: str, labels) -> str:
        s = data.subset.get(split)
        if s is None:
            return f"{len(labels):,} {split}"
        if s["used"] < s["of"]:
            return f"{s['used']:,} of {s['of']:,} {split} (a class-stratified subset)"
        flag = "--train-images" if split == "train" else "--val-images"
        return f"{s['used']:,} {split} (all of them: {flag} asked for {s['asked']:,})"

    return f"{count('train', data.train_labels)} / {count('val', data.val_labels)} images"
