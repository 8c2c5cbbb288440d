"""Peak memory of a build against its number of iterations: the reference streams its rows to the writer,
so the peak should not grow with the length of the training sheets.

    python benchmarks/sheetprop_memory.py                  # 1-1 at 10k and 1,000,000; wide at 100..3000
    python benchmarks/sheetprop_memory.py --case one:10000 --case classic:100000

Each build runs in its own process; the peak is that process's maximum resident set (ru_maxrss), beside
the same process's peak after importing sheetprop and building nothing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time

ONE = {"name": "one", "description": "1-1 sigmoid, no bias", "loss": "l2", "inputs": ["x"], "targets": ["y"],
       "sample": {"inputs": [1.0], "targets": [0.2]},
       "layers": [{"size": 1, "activation": "sigmoid", "bias": False, "weights": [[0.5]]}]}

CHILD = """
import json, resource, sys, time
import sheetprop
network, iterations, out = json.loads(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
start = time.perf_counter()
if iterations:
    sheetprop.build(network, [0.5], iterations=iterations, out=out, force=True)
print(json.dumps({"seconds": time.perf_counter() - start,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure(network, iterations: int, out: str) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(network), str(iterations), out],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append", metavar="TEMPLATE:ITERATIONS",
                        help="a template name ('one' for the 1-1 network) and a number of iterations; repeatable")
    args = parser.parse_args()
    cases = args.case or ["one:10000", "one:1000000", "wide:100", "wide:1000", "wide:3000"]
    with tempfile.TemporaryDirectory() as tmp:
        base = measure(ONE, 0, f"{tmp}/none.xlsx")
        print(f"{'import sheetprop, build nothing':<32} {base['peak_mb']:7.0f} MB")
        for case in cases:
            name, iterations = case.rsplit(":", 1)
            network = ONE if name == "one" else name
            started = time.perf_counter()
            got = measure(network, int(iterations), f"{tmp}/b.xlsx")
            print(f"{name + ' × ' + f'{int(iterations):,}' + ' iterations':<32} {got['peak_mb']:7.0f} MB peak   "
                  f"{got['seconds']:7.1f} s build   ({time.perf_counter() - started:.1f} s with start-up)", flush=True)


if __name__ == "__main__":
    main()
