"""Images per second of three training pipelines on the same model and batch size, in one run.

    python benchmarks/trainer_throughput.py --data-dir ../shared/datasets/mnist

(a) the classic pipeline: torchvision MNIST dataset + PIL RandomRotation + DataLoader
(b) this project's: the dataset as tensors on the device, batches augmented on the device
(c) the model's bare forward + backward on fixed tensors (the upper limit)
(The time a default run takes to 99.4%: benchmarks/trainer_processes.py --full.)
"""

from __future__ import annotations

import argparse
import gzip
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from trainer import data, models
from trainer.config import RunConfig
from trainer.device import data_generator, resolve
from trainer.optim import make_optimizer


def step(model, optimizer, x, y) -> None:
    loss = F.cross_entropy(model(x), y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def timed(batches, model, optimizer, n: int, warmup: int = 10) -> float:
    """Images/s over ``n`` batches after ``warmup`` batches (the batch source is part of the timing)."""
    it = iter(batches)
    for _ in range(warmup):
        step(model, optimizer, *next(it))
    start, seen = time.perf_counter(), 0
    for _ in range(n):
        x, y = next(it)
        step(model, optimizer, x, y)
        seen += len(y)
    return seen / (time.perf_counter() - start)


def fresh(cfg: RunConfig, device):
    torch.manual_seed(0)
    model = device.prepare(models.create(cfg.model)).train()
    return model, make_optimizer(cfg, model)


def classic_loader(data_dir: Path, root: Path, cfg: RunConfig, workers: int, device):
    from torchvision import datasets, transforms

    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for key, path in data.find_files(data_dir).items():
        target = raw / data.FILES[key]
        if not target.exists():
            target.write_bytes(gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes())
    tf = transforms.Compose([transforms.RandomRotation((-cfg.rotation, cfg.rotation), fill=0),
                             transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
    ds = datasets.MNIST(str(root), train=True, download=False, transform=tf)
    loader = torch.utils.data.DataLoader(ds, batch_size=cfg.batch_size, shuffle=True, num_workers=workers,
                                         persistent_workers=workers > 0, pin_memory=device.type == "cuda")
    while True:  # each batch goes to the device the model is on, as a classic training loop moves it
        for x, y in loader:
            yield x.to(device.device, non_blocking=True), y.to(device.device, non_blocking=True)


def device_batches(mnist, cfg: RunConfig, generator):
    augment = data.augmentation(cfg.rotation, cfg.translate)
    while True:
        yield from data.batches(mnist.train, cfg.batch_size, generator, augment)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--batches", type=int, default=400, help="timed batches per pipeline")
    parser.add_argument("--device", default="auto", help="auto, cuda, mps or cpu (every pipeline runs on it)")
    args = parser.parse_args()
    cfg = RunConfig()
    device = resolve(args.device)
    print(f"model {cfg.model}, batch {cfg.batch_size}, device {device.describe()}, {args.batches} batches each")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (0, 2):
            model, opt = fresh(cfg, device)
            results[f"(a) torchvision + PIL + DataLoader, {workers} workers"] = timed(
                classic_loader(args.data_dir, Path(tmp), cfg, workers, device), model, opt, args.batches)
    mnist = data.load(args.data_dir, device.device)
    model, opt = fresh(cfg, device)
    results["(b) device-resident tensors + batch augmentation"] = timed(
        device_batches(mnist, cfg, data_generator(0)), model, opt, args.batches)
    model, opt = fresh(cfg, device)
    x, y = mnist.train.images[: cfg.batch_size].clone(), mnist.train.labels[: cfg.batch_size].clone()
    results["(c) bare forward + backward, fixed tensors"] = timed(iter(lambda: (x, y), None), model, opt, args.batches)
    for name, ips in results.items():
        print(f"{name:<52} {ips:>8,.0f} images/s")
    a = max(v for k, v in results.items() if k.startswith("(a)"))
    b = results["(b) device-resident tensors + batch augmentation"]
    c = results["(c) bare forward + backward, fixed tensors"]
    print(f"(b)/(a) = {b / a:.2f}×   (b)/(c) = {b / c:.2f}×")


if __name__ == "__main__":
    main()
