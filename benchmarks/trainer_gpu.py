"""The plain training step against the fast ones (trainer.step), on one device in one run: steps/s, images/s,
per-epoch time and the time to the first epoch at the target test accuracy, for each step mode.

    python benchmarks/trainer_gpu.py --data-dir ../shared/datasets/mnist                 # the default run, each mode
    python benchmarks/trainer_gpu.py --data-dir ../shared/datasets/mnist --seeds 1-5     # accuracy over seeds too
    python benchmarks/trainer_gpu.py --data-dir ../shared/datasets/mnist --epochs 1 --limit 2560   # a quick look

Each mode trains the default run (the same seeds and precision) through trainer.api.train, as
`trainer run --step-mode MODE` does. A mode that cannot run on the device is named with the reason and not timed:
without CUDA only the plain path runs. The first epoch holds the start-up (cuDNN's autotuning, capturing or
compiling); steps/s and images/s are the median of the later epochs' training passes (of the first with one epoch).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

import trainer.run
import trainer.session
from sheetprop.wording import plural
from trainer import api, data
from trainer.config import STEP_MODES, RunConfig
from trainer.device import resolve, set_threads
from trainer.step import unavailable


@dataclass
class Timing:
    mode: str
    seed: int
    passes: list[float]  # per epoch, the training pass alone
    run: trainer.run.Run  # its history holds each epoch's training and evaluation time

    def steady(self) -> float:
        """Seconds per training pass after the first (the first's when there is one)."""
        return statistics.median(self.passes[1:] or self.passes)


def subset(data_dir: Path, limit: int, folder: Path) -> Path:
    """The first ``limit`` training and test images of ``data_dir``, as IDX files in ``folder``."""
    for key, path in data.locate(data_dir, download=False).items():
        data.write_idx(folder / data.FILES[key], data.read_idx(path, key[1])[:limit])
    return folder


def train(cfg: RunConfig, mode: str, seed: int, out: Path) -> Timing:
    """One run in ``mode``, its training passes timed (each ends by reading its sums back: a device sync)."""
    passes: list[float] = []
    real = trainer.session.train_epoch

    def timed(*args, **kwargs):
        start = time.perf_counter()
        result = real(*args, **kwargs)
        passes.append(time.perf_counter() - start)
        return result

    trainer.session.train_epoch = timed
    try:
        run = api.train(cfg, name=f"{mode}-seed{seed}", step_mode=mode, seed=seed, out_dir=str(out), progress=False,
                        echo=lambda line: print("   ", line) if "step_mode" in line else None)
    finally:
        trainer.session.train_epoch = real
    return Timing(mode, seed, passes, run)


def report(timings: list[Timing], cfg: RunConfig, images: int, target: float) -> None:
    steps = -(-images // cfg.batch_size)
    print(f"{steps} steps of {cfg.batch_size} per epoch; pass: an epoch's training pass (median after the first); "
          "epoch: training and evaluation")
    print(f"{'mode':<8}{'seed':>5}{'steps/s':>9}{'images/s':>10}{'pass s':>9}{'1st epoch s':>13}{'epoch s':>9}"
          f"{'all epochs s':>14}{f'to {100 * target:.2f}%':>11}{'last acc':>10}")
    for t in timings:
        epochs = [h["seconds"] for h in t.run.history]
        reached = t.run.first_at(target)
        to_target = f"{t.run.seconds_until(reached):.1f} s" if reached else "not hit"
        print(f"{t.mode:<8}{t.seed:>5}{steps / t.steady():>9.1f}{images / t.steady():>10,.0f}{t.steady():>9.2f}"
              f"{epochs[0]:>13.2f}{statistics.median(epochs[1:] or epochs):>9.2f}{sum(epochs):>14.1f}"
              f"{to_target:>11}{100 * t.run.accuracies[-1]:>9.2f}%")
    modes = list(dict.fromkeys(t.mode for t in timings))
    if "eager" in modes and len(modes) > 1:
        def mean(mode: str, of) -> float:
            return statistics.mean(of(t) for t in timings if t.mode == mode)

        for mode in modes[1:]:
            print(f"{mode} against eager: {mean('eager', Timing.steady) / mean(mode, Timing.steady):.2f}× the steps/s, "
                  f"mean last accuracy {100 * mean(mode, lambda t: t.run.accuracies[-1]):.2f}% against "
                  f"{100 * mean('eager', lambda t: t.run.accuracies[-1]):.2f}%")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--device", default="auto", help="auto, cuda, mps or cpu")
    parser.add_argument("--precision", default="fp32", help="fp32, bf16 or fp16 (every mode computes in it)")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads; 0: one per core")
    parser.add_argument("--modes", default=",".join(STEP_MODES), help="step modes to time, in order")
    parser.add_argument("--seeds", default="1", help="seeds, each run in each mode: 1-5, 1,4,7")
    parser.add_argument("--epochs", type=int, default=RunConfig().epochs)
    parser.add_argument("--limit", type=int, help="train and test on the first LIMIT images of each split")
    parser.add_argument("--target", type=float, default=99.4, help="test accuracy (%%) to time")
    args = parser.parse_args()
    cfg = api.configure(device=args.device, precision=args.precision, threads=args.threads, epochs=args.epochs)
    device = resolve(cfg.device, precision=cfg.precision)
    set_threads(cfg.threads)
    modes = args.modes.split(",")
    print(f"device {device.describe()}, torch {torch.__version__}; model {cfg.model}, batch {cfg.batch_size}, "
          f"{plural(cfg.epochs, 'epoch')}, seeds {args.seeds}")
    for mode in modes:
        problem = unavailable(mode, device, cfg)
        if problem is not None:
            print(f"{mode}: not timed ({problem})")
    runnable = [m for m in modes if unavailable(m, device, cfg) is None]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "data").mkdir()
        data_dir = subset(args.data_dir, args.limit, folder / "data") if args.limit else args.data_dir
        cfg = cfg.updated(data_dir=str(data_dir))
        images = len(data.read_idx(data.locate(data_dir, download=False)[("train", "labels")], "labels"))
        timings = [train(cfg, mode, seed, folder / "runs") for seed in api.seed_list(args.seeds) for mode in runnable]
    report(timings, cfg, images, args.target / 100)


if __name__ == "__main__":
    main()
