"""Time the workbook build against a bare xlsxwriter loop writing as many formula cells.

    python benchmarks/sheetprop_build.py [--iterations 10000] [--template classic]

Prints seconds, formula cells, cells/s and file size for: the 6-rate build at the given
iterations, a bare xlsxwriter loop (write_formula with values, nothing else) of the same
size (for classic), and the default command (`sheetprop build`, 6 × 100) with interpreter start-up.
`--template classic --template deep` adds the deepest shipped template.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import xlsxwriter

from sheetprop import network
from sheetprop.layout import TrainingLayout
from sheetprop.workbook import build

LRS = [0.1, 0.2, 0.5, 0.8, 1.0, 2.0]


def row(label: str, seconds: float, cells: int, path: Path) -> None:
    size = path.stat().st_size / 1e6
    print(f"{label:<34} {seconds:8.2f} s  {cells:>10,} cells  {cells / seconds:>9,.0f} cells/s  {size:7.1f} MB")


def bare_loop(path: Path, rows: int, cols: int, sheets: int) -> float:
    start = time.perf_counter()
    wb = xlsxwriter.Workbook(str(path))
    for s in range(sheets):
        ws = wb.add_worksheet(f"s{s}")
        for r in range(rows):
            for c in range(cols):
                ws.write_formula(r, c + 1, f"=B{r}-$B$2*U{r}", None, 0.123456789)
    wb.close()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=10_000)
    parser.add_argument("--template", action="append", help="template(s) to time (default: classic)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in args.template or ["classic"]:
            net = network.load(name)
            cols = len(TrainingLayout(net, args.iterations).columns)
            cells = len(LRS) * (args.iterations + 1) * cols
            out = tmp / f"{name}.xlsx"
            start = time.perf_counter()
            build(net, LRS, args.iterations, out)
            row(f"sheetprop build {name} 6×{args.iterations}", time.perf_counter() - start, cells, out)
            if name == "classic":  # the comparison loop once; other templates compare per cell with classic
                bare = tmp / f"bare-{name}.xlsx"
                row("bare xlsxwriter loop, same cells", bare_loop(bare, args.iterations + 1, cols, len(LRS)), cells,
                    bare)
        out = tmp / "default.xlsx"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "sheetprop", "build", "--out", str(out)], check=True,
                       stdout=subprocess.DEVNULL)
        cells = len(LRS) * 101 * len(TrainingLayout(network.load("classic"), 100).columns)
        row("default command 6×100 (with start-up)", time.perf_counter() - start, cells, out)


if __name__ == "__main__":
    main()
