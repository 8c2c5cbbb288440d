"""Tiny MNIST-shaped IDX files made on the spot: digits drawn as bars at a place that encodes the label."""

from pathlib import Path

import numpy as np

from trainer.data import FILES, write_idx


def make_images(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    images = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
    for i, label in enumerate(labels):
        row = 3 + 2 * int(label)
        images[i, row : row + 2, 4:24] = 255
    return images, labels


def write_mnist(folder: Path, n_train: int = 320, n_test: int = 120, gz: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for split, (n, seed) in {"train": (n_train, 0), "test": (n_test, 1)}.items():
        images, labels = make_images(n, seed)
        write_idx(folder / (FILES[(split, "images")] + suffix), images)
        write_idx(folder / (FILES[(split, "labels")] + suffix), labels)
    return folder
