"""Print the results table (Markdown) of finished runs: accuracy of the last 3 epochs, wall time.

    python benchmarks/mnist_results.py outputs/runs/seed1 outputs/runs/seed2 outputs/runs/seed3
"""

import sys
from pathlib import Path

import torch

from trainer import models


def main(run_dirs: list[str]) -> None:
    print("| run | model | params | epochs | test acc, last 3 epochs | min of last 3 | first epoch ≥ 99.4% | wall time |")
    print("|---|---|---|---|---|---|---|---|")
    for d in map(Path, run_dirs):
        state = torch.load(d / "last.pt", weights_only=False, map_location="cpu")
        h, cfg = state["history"], state["config"]
        last = [x["test acc"] for x in h[-3:]]
        first = next((x["epoch"] for x in h if x["test acc"] >= 0.994), "—")
        params = models.count_parameters(models.create(cfg["model"]))
        accs = " / ".join(f"{100 * a:.2f}%" for a in last)
        print(f"| {d.name} (seed {cfg['seed']}) | {cfg['model']} | {params:,} | {len(h)} | {accs} | "
              f"{100 * min(last):.2f}% | {first} | {state['seconds']:.0f} s |")


if __name__ == "__main__":
    main(sys.argv[1:])
