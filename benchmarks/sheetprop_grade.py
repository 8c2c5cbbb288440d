"""Time `sheetprop grade` on a class: N hand-built workbooks (the test corpus's layouts and mistakes in turn,
each with cached values, as Excel saves them), graded in one call.

    python benchmarks/sheetprop_grade.py            # 100 workbooks
    python benchmarks/sheetprop_grade.py --files 300 --iterations 50

Prints the time to write the class (not counted), to grade it, per file and per table, and the tally.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' corpus writer

import sheetprop  # noqa: E402
from sheetprop.grading.report import mistakes, summary  # noqa: E402
from sheetprop.recalc import recalculate_all  # noqa: E402
from tests.students import LAYOUTS, MISTAKES, write  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=100)
    parser.add_argument("--iterations", type=int, default=20, help="rows per table")
    args = parser.parse_args()
    cases = [(l, m) for l, m in itertools.product(LAYOUTS, MISTAKES)
             if m != "pasted values" and not (m == "drifting η" and LAYOUTS[l].rate == "typed")]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "typed").mkdir()
        start = time.perf_counter()
        typed = [write(root / "typed" / f"s{i:04d}.xlsx", LAYOUTS[layout], mistake, args.iterations)
                 for i, (layout, mistake) in zip(range(args.files), itertools.cycle(cases))]
        saved = recalculate_all(typed, root / "class")  # with cached values, as a spreadsheet program saves them
        print(f"wrote {len(saved)} workbooks ({args.iterations} iterations a table) in "
              f"{time.perf_counter() - start:.1f} s (LibreOffice computing their values)")
        start = time.perf_counter()
        grades = sheetprop.grade(root / "class", progress=False)
        seconds = time.perf_counter() - start
    tables = sum(len(f.tables) for f in grades.files)
    print(f"graded {len(grades.files)} workbooks, {tables} tables in {seconds:.2f} s: "
          f"{1000 * seconds / len(grades.files):.1f} ms per workbook, {1000 * seconds / tables:.1f} ms per table")
    print(summary(grades))
    for mistake, n in mistakes(grades).most_common():
        print(f"  {n:>3} × {mistake}")


if __name__ == "__main__":
    main()
