"""Time a build with every optimizer against today's gradient-descent build, per formula cell, in one run.

    python benchmarks/sheetprop_optimizers.py                    # classic, 6 learning rates × 1,000 iterations
    python benchmarks/sheetprop_optimizers.py --iterations 3000 --repeats 3

Both builds are the whole `sheetprop build` path (reference, every sheet, the file); the cells counted are
the training sheets' formula cells, which the optimizers' state columns add to. The builds alternate
(gradient descent, every optimizer, gradient descent, …) so that a machine's load falls on both alike; the
best of the repeats is printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from sheetprop import api, template
from sheetprop.update import OPTIMIZERS

LRS = [0.1, 0.2, 0.5, 0.8, 1.0, 2.0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--template", default="classic")
    parser.add_argument("--iterations", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    net = template.load(args.template)
    variants = {"sgd only": ("sgd",), f"all {len(OPTIMIZERS)} optimizers": tuple(OPTIMIZERS)}
    best: dict[str, tuple[float, int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for label, optimizers in variants.items():
                out = Path(tmp) / "book.xlsx"
                start = time.perf_counter()
                built = api.build(dataclasses.replace(net, optimizers=optimizers), LRS, args.iterations, out,
                                  force=True)
                seconds = time.perf_counter() - start
                if label not in best or seconds < best[label][0]:
                    best[label] = (seconds, built.formula_cells)
    print(f"{args.template}, {len(LRS)} learning rates × {args.iterations:,} iterations, best of {args.repeats}:")
    per_cell = {}
    for label, (seconds, cells) in best.items():
        per_cell[label] = seconds / cells
        print(f"  {label:<16} {len(variants[label]) * len(LRS):>3} sheets  {seconds:7.2f} s  {cells:>11,} cells  "
              f"{1e6 * per_cell[label]:5.2f} µs/cell")
    first, second = per_cell.values()
    print(f"  per formula cell: every optimizer / sgd only = {second / first:.2f}×")


if __name__ == "__main__":
    main()
