"""MNIST from IDX files (raw or .gz), held as normalized tensors on the training device.

Batches are cut from those tensors and augmented as whole batches on the device (a random
rotation and shift through ``affine_grid`` + ``grid_sample``): no per-sample Python, no PIL.
"""

from __future__ import annotations

import gzip
import math
import shutil
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from trainer import runfolder

FILES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}
_MAGIC = {"images": (0x0803, 3), "labels": (0x0801, 1)}


class DataError(ValueError):
    """Missing, truncated or corrupt data; the message names the file."""


@dataclass
class Split:
    """One split on the device: images (N, 1, 28, 28) normalized, labels (N,) int64."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)


@dataclass
class MNIST:
    train: Split
    test: Split
    mean: float
    std: float
    raw_test: torch.Tensor  # uint8 test images on the CPU, for pictures of mistakes
    fingerprint: str = ""  # of the four files' contents (see trainer.runfolder.fingerprint)


def read_idx(path: Path, kind: str) -> np.ndarray:
    """Read one IDX file (raw or gzip) and check its header against its size."""
    try:
        data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot read ({exc})") from None
    magic, ndim = _MAGIC[kind]
    if len(data) < 4 + 4 * ndim or int.from_bytes(data[:4], "big") != magic:
        raise DataError(f"{path}: not an IDX {kind} file (bad header)")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    if kind == "images" and dims[1:] != [28, 28]:
        raise DataError(f"{path}: images of {dims[1]}×{dims[2]} pixels; MNIST's are 28×28")
    body = data[4 + 4 * ndim :]
    if len(body) != math.prod(dims):
        raise DataError(f"{path}: truncated or corrupt ({len(body):,} bytes of data, header says {math.prod(dims):,})")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def find_files(data_dir: Path) -> dict[tuple[str, str], Path]:
    """The four files in ``data_dir`` (or torchvision's ``MNIST/raw`` below it), raw or .gz. Where one is there
    both raw and gzipped (or in both folders), the copies must hold the same data."""
    found = {}
    for key, stem in FILES.items():
        copies = [folder / name for folder in (data_dir, data_dir / "MNIST" / "raw") for name in (stem, stem + ".gz")
                  if (folder / name).is_file()]
        if copies:
            found[key] = copies[0]
        if len(copies) > 1:
            _same(copies, key[1])
    return found


def _same(copies: list[Path], kind: str) -> None:
    """Refuse copies of one file that differ (a raw one beside an older .gz, say): which one is MNIST?"""
    first = read_idx(copies[0], kind)
    for other in copies[1:]:
        if not np.array_equal(first, read_idx(other, kind)):
            raise DataError(f"{copies[0]} and {other} hold different data; remove the one that is wrong")


def _download(data_dir: Path) -> None:
    """torchvision's download, for users who are online and have no local copy."""
    from torchvision.datasets import MNIST as TorchvisionMNIST

    for train in (True, False):
        TorchvisionMNIST(root=str(data_dir), train=train, download=True)


def locate(data_dir: str | Path, download: bool = True) -> dict[tuple[str, str], Path]:
    """Find the files, downloading them with torchvision only when none are present."""
    data_dir = Path(data_dir)
    found = find_files(data_dir)
    if not found and download:
        made = runfolder.first_missing(data_dir) or (None if (data_dir / "MNIST").exists() else data_dir / "MNIST")
        try:
            _download(data_dir)
        except Exception as exc:  # offline, refused, or a failed checksum
            if made is not None:  # leave nothing behind: the folders torchvision made
                shutil.rmtree(made, ignore_errors=True)
            names = ", ".join(f"{s}.gz" for s in FILES.values())
            raise DataError(f"MNIST not found in {data_dir} and the download failed ({type(exc).__name__}); "
                            f"put {names} (or the same without .gz) in {data_dir}") from None
        found = find_files(data_dir)
    missing = [FILES[k] for k in FILES if k not in found]
    if missing:
        raise DataError(f"{data_dir}: missing {', '.join(missing)} (raw or .gz)")
    return found


def load(data_dir: str | Path, device: torch.device, download: bool = True) -> MNIST:
    """Read, check and normalize MNIST once, and move it to ``device``."""
    files = locate(data_dir, download)
    arrays = {key: read_idx(path, key[1]) for key, path in files.items()}
    for split in ("train", "test"):
        images, labels = arrays[(split, "images")], arrays[(split, "labels")]
        if len(images) != len(labels):
            raise DataError(f"{files[(split, 'labels')]}: {len(labels)} labels for {len(images)} images")
        if labels.size and labels.max() > 9:
            raise DataError(f"{files[(split, 'labels')]}: labels must be digits 0-9")
        if not len(images):
            raise DataError(f"{files[(split, 'images')]}: no {split} images")
    raw = {name: torch.from_numpy(arrays[(name, "images")].copy()) for name in ("train", "test")}
    train_f = raw["train"].float()
    mean = float(train_f.mean() / 255)
    std = float(train_f.std() / 255) if train_f.numel() > 1 else 0.0
    if not std > 0:
        raise DataError(f"{files[('train', 'images')]}: the training images are empty or all alike")

    def split(name: str) -> Split:
        x = ((raw[name].to(device).float() / 255 - mean) / std).unsqueeze(1)
        y = torch.from_numpy(arrays[(name, "labels")].astype(np.int64)).to(device)
        return Split(x, y)

    return MNIST(split("train"), split("test"), mean, std, raw["test"], runfolder.fingerprint(arrays))


@dataclass(frozen=True)
class Augmentation:
    """Random rotation by U(−degrees, degrees) and shift by up to ``translate`` of the image size."""

    degrees: float
    translate: float

    def draw(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """n affine matrices (n, 2, 3), drawn where the generator lives (the CPU, see
        trainer.device.data_generator), so every device and every process draws the same."""
        angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(self.degrees)
        shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * self.translate * 2
        cos, sin = torch.cos(angle), torch.sin(angle)
        return torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)

    @staticmethod
    def apply(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def augment(x: torch.Tensor, degrees: float, translate: float, generator: torch.Generator) -> torch.Tensor:
    """A batch rotated and shifted at random (see :class:`Augmentation`)."""
    aug = Augmentation(degrees, translate)
    return aug.apply(x, aug.draw(x.shape[0], generator))


def augmentation(degrees: float, translate: float) -> Augmentation | None:
    """The training augmentation, or None when it would do nothing."""
    return Augmentation(degrees, translate) if degrees or translate else None


def batches(split: Split, batch_size: int, generator: torch.Generator | None = None,
            augment: Augmentation | None = None, chunk: int = 4096, rank: int = 0,
            world: int = 1) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Consecutive batches of ``batch_size``, shuffled when a generator is given.

    With ``world`` > 1 processes, every process draws the same order and the same augmentation
    and takes its part (``rank``) of each batch, so together they see exactly the batches one
    process would; a last batch smaller than ``world`` is left out. The augmentation runs on
    chunks of about ``chunk`` images at a time, far cheaper per image than one call per batch.
    """
    n = len(split)
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    step = max(batch_size, chunk // batch_size * batch_size)
    for start in range(0, n, step):
        idx = order[start : start + step]
        theta = augment.draw(len(idx), generator) if augment is not None else None
        parts = [torch.tensor_split(torch.arange(b, min(b + batch_size, len(idx))), world)[rank]
                 for b in range(0, len(idx), batch_size) if world == 1 or min(batch_size, len(idx) - b) >= world]
        if not parts:
            return
        mine = torch.cat(parts) if world > 1 else torch.arange(len(idx))
        device_idx = idx[mine].to(split.labels.device)
        x, y = split.images[device_idx], split.labels[device_idx]
        if theta is not None:
            x = augment.apply(x, theta[mine])
        at = 0
        for part in parts:
            yield x[at : at + len(part)], y[at : at + len(part)]
            at += len(part)


def write_idx(path: str | Path, array: np.ndarray) -> None:
    """Write an IDX file (gzip when the name ends in .gz): the inverse of :func:`read_idx`."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    magic = 0x0803 if array.ndim == 3 else 0x0801
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    data = header + array.tobytes()
    path = Path(path)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
