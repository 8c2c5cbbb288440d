"""Time `sheetprop verify` on wide networks: LibreOffice's recalculation and our comparison apart.

    python benchmarks/sheetprop_verify.py                     # 2-40-40-2 and 2-86-86-2, 2 rates × 100 iterations
    python benchmarks/sheetprop_verify.py --hidden 20 --iterations 300

2-86-86-2 is the widest 2-n-n-2 network whose training sheet fits in Excel (16,353 of its 16,384
columns). For each network it prints the seconds spent building the workbook, recalculating it in
LibreOffice, and then, in sheetprop: reading the setup (meta sheet, defined names, inputs), parsing
the training sheets' values, judging them row by row against the reference, scanning the other
sheets for error values and every formula for Excel's limits.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from sheetprop import api, recalc
from sheetprop.layout import TrainingLayout
from sheetprop.readback import SavedBook
from sheetprop.verification import Report, judge, read_setup, scan_errors, scan_limits

LRS = [0.5, 2.0]


def wide(hidden: int, iterations: int) -> dict:
    """A 2-n-n-2 sigmoid network with biases and one sample, as a template's contents."""
    layer = {"size": hidden, "activation": "sigmoid", "bias": True}
    return {"name": f"wide{hidden}", "description": f"2-{hidden}-{hidden}-2 sigmoid", "loss": "l2",
            "inputs": ["x1", "x2"], "targets": ["y1", "y2"], "init": {"kind": "xavier", "seed": 3},
            "sample": {"inputs": [0.05, 0.10], "targets": [0.01, 0.99]},
            "layers": [layer, layer, {"size": 2, "activation": "sigmoid", "bias": True}],
            "training": {"learning_rates": LRS, "iterations": iterations}}


def timed(what: str, times: dict[str, float], call):
    start = time.perf_counter()
    out = call()
    times[what] = time.perf_counter() - start
    return out


def run(hidden: int, iterations: int, folder: Path) -> None:
    times: dict[str, float] = {}
    book = folder / f"wide{hidden}.xlsx"
    built = timed("build", times, lambda: api.build(wide(hidden, iterations), out=book, force=True))
    fresh = timed("LibreOffice", times, lambda: recalc.recalculate(book, folder / f"recalculated{hidden}"))
    with SavedBook(book) as original, SavedBook(fresh) as values:
        net, lrs, n, sheets = timed("setup", times, lambda: read_setup(original, values, str(book)))
        parsed = timed("parse", times, lambda: [values.sheet(s) for s in sheets])
        report = Report()
        initial = np.array([net.initial(p) for p in net.params])
        timed("judge", times, lambda: [judge(report, sheet, TrainingLayout(net, n, name), lr, initial)
                                       for sheet, name, lr in zip(parsed, sheets, lrs)])
        timed("errors", times, lambda: scan_errors(values, skip=tuple(sheets)))
        timed("limits", times, lambda: scan_limits(original))
    ours = sum(times[k] for k in ("setup", "parse", "judge", "errors", "limits"))
    print(f"{net.sizes} {len(lrs)}×{n}: {built.formula_cells:,} training cells, "
          f"{book.stat().st_size / 1e6:.0f} MB, recalculated {fresh.stat().st_size / 1e6:.0f} MB; "
          f"{'OK' if report.ok() else 'NOT OK'}, largest relative difference beyond rounding "
          f"{report.max_difference:.2g}")
    print("  " + "  ".join(f"{k} {v:.1f} s" for k, v in times.items()) + f"  | sheetprop's part of verify {ours:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, action="append", help="hidden layer width n (default: 40 and 86)")
    parser.add_argument("--iterations", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sheetprop-bench-") as tmp:
        for hidden in args.hidden or [40, 86]:
            run(hidden, args.iterations, Path(tmp))


if __name__ == "__main__":
    main()
