"""Stop a small run with SIGKILL, SIGINT or SIGTERM (in turn) at random moments, check what a reader sees (last.pt,
the workbook, history.csv and best.pt agree), continue it (resume, or the same command when no epoch was kept),
and compare the continued run with an uninterrupted one bit for bit (weights, weight average, optimizer state and
every epoch's numbers but its time).

    python scripts/kill_trials.py [TRIALS]      # on generated data, in a temporary folder

The moments are drawn over the uninterrupted run's span. Only a kill that lands while the run trains (after its
first epoch was kept, before its last) counts as a trial; kills before the first epoch or after the end are
counted apart (they are still checked: the same command must start such a run again).
"""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import openpyxl
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.mnist_fixtures import write_mnist  # noqa: E402

import trainer  # noqa: E402
from trainer.checkpoint import Checkpoint  # noqa: E402

EPOCHS = 6


def command(data: Path, out: Path, name: str) -> list[str]:
    return [sys.executable, "-m", "trainer", "run", "--data-dir", str(data), "--epochs", str(EPOCHS), "--batch-size",
            "64", "--scheduler", "step", "--out-dir", str(out), "--name", name, "--no-progress", "--threads", "1",
            "--device", "cpu"]


def uninterrupted(data: Path, out: Path) -> tuple[Checkpoint, float, float]:
    """The reference run; the moments its first epoch was kept and it ended, in seconds from its start."""
    start = time.monotonic()
    proc = subprocess.Popen(command(data, out, "whole"), stdout=subprocess.DEVNULL, cwd=REPO)
    while not (out / "whole" / "last.pt").exists():
        time.sleep(0.02)
    first = time.monotonic() - start
    assert proc.wait() == 0
    return Checkpoint.load(out / "whole" / "last.pt"), first, time.monotonic() - start


def agree(folder: Path) -> tuple[bool, str]:
    """Whether a reader sees one epoch in all the files (or, before the first epoch, none of them)."""
    try:
        run = trainer.load(folder)
    except trainer.RunError as exc:
        return not (folder / "last.pt").exists(), f"no epoch: {exc}"[:80]
    rows = openpyxl.load_workbook(folder / "training.xlsx", read_only=True)["Epochs"].iter_rows(min_row=5,
                                                                                              values_only=True)
    in_book = sum(1 for r in rows if isinstance(r[0], int) and isinstance(r[3], float))
    in_csv = len((folder / "history.csv").read_text().splitlines()) - 1
    best = Checkpoint.load(folder / "best.pt")
    ok = run.epochs == in_book == in_csv and best.epoch <= run.epochs and max(run.accuracies) == best.best
    return ok, f"epochs {run.epochs}, workbook {in_book}, csv {in_csv}, best.pt epoch {best.epoch}"


def identical(a: Checkpoint, b: Checkpoint) -> bool:
    """Bit for bit the same training (the time of each epoch aside)."""
    def same(x, y) -> bool:
        if isinstance(x, torch.Tensor):
            return isinstance(y, torch.Tensor) and torch.equal(x, y)
        if isinstance(x, dict):
            return isinstance(y, dict) and x.keys() == y.keys() and all(same(x[k], y[k]) for k in x)
        if isinstance(x, (list, tuple)):
            return isinstance(y, (list, tuple)) and len(x) == len(y) and all(map(same, x, y))
        return x == y

    untimed = [[{k: v for k, v in h.items() if k != "seconds"} for h in s.history] for s in (a, b)]
    return (a.epoch == b.epoch and same(a.model, b.model) and same(a.trained_model, b.trained_model)
            and same(a.optimizer, b.optimizer) and same(a.scheduler, b.scheduler) and untimed[0] == untimed[1])


def trial(n: int, data: Path, out: Path, whole: Checkpoint, span: tuple[float, float], rng: random.Random) -> dict:
    sig = [signal.SIGKILL, signal.SIGINT, signal.SIGTERM][n % 3]
    name, folder = f"t{n}", out / f"t{n}"
    proc = subprocess.Popen(command(data, out, name), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    time.sleep(rng.uniform(*span))
    alive = proc.poll() is None
    proc.send_signal(sig)
    proc.wait()
    kept = Checkpoint.load(folder / "last.pt").epoch if (folder / "last.pt").exists() else 0
    where = "within" if alive and 1 <= kept < EPOCHS else "before" if alive and kept == 0 else "after"
    leftovers = sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) if folder.exists() else []
    consistent, state = agree(folder)
    again = [sys.executable, "-m", "trainer", "run", "--resume", str(folder), "--no-progress", "--threads", "1"] \
        if kept else command(data, out, name)
    code = subprocess.run(again, capture_output=True, text=True, cwd=REPO).returncode
    same = code == 0 and identical(Checkpoint.load(folder / "last.pt"), whole)
    return {"trial": n, "signal": sig.name, "landed": where, "kept": kept, "leftovers": leftovers, "state": state,
            "consistent": consistent, "continued": code, "identical": same}


def main() -> None:
    trials = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    root = Path(tempfile.mkdtemp(prefix="kill-trials-"))
    data, out = write_mnist(root / "data", n_train=640, n_test=200), root / "runs"
    rng = random.Random(0)
    try:
        whole, first, end = uninterrupted(data, out)
        print(f"uninterrupted: first epoch kept after {first:.1f} s, {EPOCHS} epochs in {end:.1f} s", flush=True)
        results = []
        for n in range(trials):
            results.append(trial(n, data, out, whole, (0.8 * first, end), rng))
            print(results[-1], flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    within = [r for r in results if r["landed"] == "within"]
    print(f"{len(within)} of {len(results)} kills landed within training "
          f"({sum(r['landed'] == 'before' for r in results)} before the first epoch was kept, "
          f"{sum(r['landed'] == 'after' for r in results)} after the end); of those {len(within)}: "
          f"{sum(r['consistent'] for r in within)} consistent, {sum(r['continued'] == 0 for r in within)} continued "
          f"with exit 0, {sum(r['identical'] for r in within)} bit-identical to the uninterrupted run")
    outside = [r for r in results if r["landed"] != "within"]
    if outside:
        good = sum(r["consistent"] and r["continued"] == 0 and r["identical"] for r in outside)
        print(f"outside training: {good} of {len(outside)} consistent, continued and bit-identical")


if __name__ == "__main__":
    main()
