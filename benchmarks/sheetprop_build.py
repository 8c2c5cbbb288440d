"""Time workbook builds against a like-for-like bare xlsxwriter loop, per formula cell.

    python benchmarks/sheetprop_build.py                         # classic 6×10000 and wide 6×1000
    python benchmarks/sheetprop_build.py --build classic:10000 --build deep:2000 --no-bare

For every build it prints seconds, formula cells in the training sheets, µs per cell and file
size; then the same training-sheet cells (the same formula strings and cached values) written
with xlsxwriter's public API (`write_formula`, constant-memory mode), so the ratio measures our
writer and nothing else; then each build's time per cell relative to the first build's; and the
default command (`sheetprop build`, classic 6×100) with interpreter start-up.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import xlsxwriter

from sheetprop import template
from sheetprop.layout import TrainingLayout
from sheetprop.reference import train
from sheetprop.workbook import Plan, build

LRS = [0.1, 0.2, 0.5, 0.8, 1.0, 2.0]


def cells(name: str, iterations: int, rates: int = len(LRS)) -> int:
    return rates * (iterations + 1) * len(TrainingLayout(template.load(name), iterations).columns)


def line(label: str, seconds: float, n: int, path: Path) -> None:
    print(f"{label:<40} {seconds:8.2f} s  {n:>11,} cells  {1e6 * seconds / n:6.2f} µs/cell  "
          f"{path.stat().st_size / 1e6:7.1f} MB")


def bare(path: Path, name: str, iterations: int) -> float:
    """The training sheets' formulas and cached values through xlsxwriter's public API, nothing else."""
    net = template.load(name)
    plan = Plan(net, tuple(LRS), iterations)
    trace = train(net, LRS, iterations)
    start = time.perf_counter()
    wb = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    fmt = wb.add_format({"num_format": "0.000000000"})
    for slot, layout in enumerate(plan.training):
        ws = wb.add_worksheet(layout.sheet)
        values = np.column_stack([trace.values(q)[slot] for q in layout.columns]).tolist()
        columns = [(layout.col(q), layout.row_templates[q], layout.first_row_templates[q]) for q in layout.columns]
        for it in range(iterations + 1):
            r = layout.row(it)
            ws.write_number(r, 0, it)
            for (col, formula, first), value in zip(columns, values[it]):
                ws.write_formula(r, col, (first if it == 0 else formula).format(r + 1, r), fmt, value)
    wb.close()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", action="append", metavar="TEMPLATE:ITERATIONS",
                        help="a build to time (default: classic:10000 and wide:1000)")
    parser.add_argument("--no-bare", action="store_true", help="skip the bare xlsxwriter loops")
    args = parser.parse_args()
    builds = [(b.split(":")[0], int(b.split(":")[1])) for b in args.build or ["classic:10000", "wide:1000"]]
    per_cell = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, iterations in builds:
            out, n = tmp / f"{name}.xlsx", cells(name, iterations)
            net = template.load(name)
            start = time.perf_counter()
            build(net, LRS, iterations, out)
            seconds = time.perf_counter() - start
            per_cell[name] = seconds / n
            line(f"sheetprop build {name} {len(LRS)}×{iterations}", seconds, n, out)
            if not args.no_bare:
                bare_seconds = bare(tmp / f"bare-{name}.xlsx", name, iterations)
                line(f"bare xlsxwriter, same {name} cells", bare_seconds, n, tmp / f"bare-{name}.xlsx")
                print(f"{'':<40} bare / sheetprop = {bare_seconds / seconds:.2f}×")
        first = builds[0][0]
        for name, _ in builds[1:]:
            print(f"time per cell, {name} / {first}: {per_cell[name] / per_cell[first]:.2f}×")
        out = tmp / "default.xlsx"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "sheetprop", "build", "--out", str(out)], check=True,
                       stdout=subprocess.DEVNULL)
        line("default command 6×100 (with start-up)", time.perf_counter() - start, cells("classic", 100), out)


if __name__ == "__main__":
    main()
