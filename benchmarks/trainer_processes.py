"""One process with every thread against data-parallel processes with one thread each, on this machine.

    python benchmarks/trainer_processes.py --data-dir ../shared/datasets/mnist [--full]

Prints training images/s (the trainer's own batches, augmentation, loss and optimizer step; the
same global batch) for 1 process × N threads and N processes × 1 thread (gloo, DistributedDataParallel),
N being the number of cores. With --full it also runs the default command both ways
(`trainer run` and `trainer run --nproc N`, seed 1) and prints when each first reached 99.4%
test accuracy and its last three epochs.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from trainer import data, distributed, models
from trainer.run import read_run
from trainer.config import RunConfig
from trainer.device import cores, data_generator, resolve
from trainer.optim import make_optimizer
from trainer.step import batch_loss
from trainer.report import DEFAULT_TARGET

CORES = cores()


def train_rate(data_dir: str, batches: int, world: distributed.World, threads: int, out: Path | None = None) -> float:
    """Global images/s over ``batches`` steps after 10 warm-up steps, as one rank of ``world`` sees it."""
    torch.set_num_threads(threads)
    device = resolve("cpu")
    distributed.start(world, device.device)
    cfg = RunConfig()
    torch.manual_seed(0)
    model = distributed.wrap(models.create(cfg.model), device.device, world)
    optimizer = make_optimizer(cfg, model)
    mnist = data.load(data_dir, device.device)
    augment = data.augmentation(cfg.rotation, cfg.translate)
    generator = data_generator(0)

    def steps():
        while True:
            yield from data.batches(mnist.train, cfg.batch_size, generator, augment, rank=world.rank, world=world.size)

    it = iter(steps())
    for i in range(batches + 10):
        if i == 10:
            start = time.perf_counter()
        x, y = next(it)
        loss, _ = batch_loss(model(x), y, cfg.batch_size, cfg, world)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    rate = batches * cfg.batch_size / (time.perf_counter() - start)
    del model, optimizer
    distributed.stop()
    if out is not None:
        out.write_text(str(rate))
    return rate


def _rank(rank: int, size: int, port: int, data_dir: str, batches: int, folder: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(size))
    train_rate(data_dir, batches, distributed.from_environment(), 1, Path(folder) / f"rate{rank}")


def full_run(data_dir: str, out: Path, name: str, *extra: str) -> str:
    subprocess.run([sys.executable, "-m", "trainer", "run", "--data-dir", data_dir, "--seed", "1", "--name", name,
                    "--out-dir", str(out), "--no-progress", *extra], check=True, stdout=subprocess.DEVNULL)
    run = read_run(out / name)
    first = run.first_at(DEFAULT_TARGET)
    reached = "never" if first is None else f"epoch {first} after {run.seconds_until(first):.0f} s"
    last = " / ".join(f"{100 * a:.2f}" for a in run.last_three)
    return f"first ≥ 99.4%: {reached}; last three {last}%; {run.seconds:.0f} s in all"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--batches", type=int, default=400, help="timed batches each way")
    parser.add_argument("--full", action="store_true", help="also run the default command both ways")
    args = parser.parse_args()
    print(f"batch {RunConfig().batch_size} (global), {args.batches} timed batches, {CORES} cores")
    one = train_rate(args.data_dir, args.batches, distributed.World(), CORES)
    print(f"1 process × {CORES} threads          {one:>8,.0f} images/s")
    with tempfile.TemporaryDirectory() as tmp, socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        torch.multiprocessing.spawn(_rank, args=(CORES, port, args.data_dir, args.batches, tmp), nprocs=CORES)
        many = min(float((Path(tmp) / f"rate{r}").read_text()) for r in range(CORES))
    print(f"{CORES} processes × 1 thread (gloo)     {many:>8,.0f} images/s   ({many / one:.2f}×)")
    if args.full:
        with tempfile.TemporaryDirectory() as tmp:
            print(f"default run, 1 process:   {full_run(args.data_dir, Path(tmp), 'one')}")
            print(f"default run, {CORES} processes: {full_run(args.data_dir, Path(tmp), 'many', '--nproc', str(CORES))}")


if __name__ == "__main__":
    main()
