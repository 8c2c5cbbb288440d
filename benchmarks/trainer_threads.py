"""Training throughput on the CPU by thread setting, alone and while another process shares the cores.

    python benchmarks/trainer_threads.py --data-dir ../shared/datasets/mnist

Each measurement is a fresh process that trains the default model on the real pipeline (device-resident
tensors, batch augmentation) for --seconds and prints images/s. The settings compared:
  spin      N threads, OpenMP threads busy-waiting between parallel regions (the OpenMP default)
  passive   N threads, waiting threads sleep (OMP_WAIT_POLICY=PASSIVE)
  1 thread  one thread
  default   what `trainer run` does when given no --threads
and the loads: alone, beside a one-core busy loop, and beside a second training process of the same setting.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

SETTINGS = {  # name: (threads, extra environment); threads 0 means the trainer's default choice
    "spin": ("cores", {"OMP_WAIT_POLICY": "ACTIVE"}),
    "passive": ("cores", {"OMP_WAIT_POLICY": "PASSIVE"}),
    "1 thread": (1, {}),
    "default": (0, {}),
}
LOADS = ("alone", "beside a busy loop", "beside a second training")


def measure(data_dir: str, threads: int, seconds: float) -> None:
    """In a worker process: train for ``seconds`` and print images/s (trainer first, as `trainer run` loads it)."""
    from trainer import data, models  # isort: skip

    import torch
    import torch.nn.functional as F

    from trainer.config import RunConfig
    from trainer.device import data_generator, resolve, set_threads
    from trainer.optim import make_optimizer

    cfg = RunConfig()
    set_threads(threads)
    device = resolve("cpu")
    mnist = data.load(data_dir, device.device, download=False)
    torch.manual_seed(0)
    model = models.create(cfg.model).train()
    optimizer = make_optimizer(cfg, model)
    augment = data.augmentation(cfg.rotation, cfg.translate)

    def batches():
        while True:
            yield from data.batches(mnist.train, cfg.batch_size, data_generator(0), augment)

    it, seen = batches(), 0
    for _ in range(5):
        next(it)
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        x, y = next(it)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        seen += len(y)
    print(f"{seen / (time.perf_counter() - start):.1f} {torch.get_num_threads()}", flush=True)


def worker(data_dir: str, setting: str, seconds: float) -> subprocess.Popen:
    threads, env = SETTINGS[setting]
    threads = os.cpu_count() if threads == "cores" else threads
    return subprocess.Popen([sys.executable, __file__, "--worker", str(threads), "--data-dir", data_dir,
                             "--seconds", str(seconds)], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, **env})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=15.0, help="timed training per measurement")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--only", nargs="+", choices=list(SETTINGS), help="measure only these settings")
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        measure(str(args.data_dir), args.worker, args.seconds)
        return
    print(f"{os.cpu_count()} cores; images/s of one training process (mean of {args.repeats}; "
          f"{args.seconds:g} s each)")
    print(f"{'setting':<10} {'threads':>7} " + " ".join(f"{load:>24}" for load in LOADS))
    for setting in args.only or SETTINGS:
        cells, used = [], "?"
        for load in LOADS:
            rates = []
            for _ in range(args.repeats):
                other = None
                if load == "beside a busy loop":
                    other = subprocess.Popen([sys.executable, "-c", "while True: pass"])
                elif load == "beside a second training":
                    other = worker(str(args.data_dir), setting, args.seconds + 30)
                time.sleep(1.0 if other else 0)
                mine = worker(str(args.data_dir), setting, args.seconds)
                rate, used = mine.communicate()[0].split()
                rates.append(float(rate))
                if other is not None:
                    other.kill()
                    other.wait()
            cells.append(f"{sum(rates) / len(rates):>24,.0f}")
        print(f"{setting:<10} {used:>7} " + " ".join(cells), flush=True)


if __name__ == "__main__":
    main()
