"""Stop a small run with SIGKILL, SIGINT or SIGTERM at random moments; after each, check what a reader sees
(last.pt, the workbook, history.csv and best.pt agree), then continue it (resume or the same command).

    python scripts/kill_trials.py [TRIALS]      # on generated data, in a temporary folder
"""
import random, signal, subprocess, sys, tempfile, time, shutil
from pathlib import Path
import openpyxl, torch
REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from tests.mnist_fixtures import write_mnist
import trainer

root = Path(tempfile.mkdtemp(prefix="kill-trials-"))
data = write_mnist(root / "data", n_train=640, n_test=200)
rng = random.Random(0)
results = []
for trial in range(int(sys.argv[1]) if len(sys.argv) > 1 else 20):
    sig = [signal.SIGKILL, signal.SIGINT, signal.SIGTERM][trial % 3]
    name = f"t{trial}"
    cmd = [sys.executable, "-m", "trainer", "run", "--data-dir", str(data), "--epochs", "6", "--batch-size", "64",
           "--scheduler", "step", "--out-dir", str(root / "runs"), "--name", name, "--no-progress", "--threads", "1"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO)
    time.sleep(rng.uniform(3.0, 9.0))
    p.send_signal(sig); p.wait()
    folder = root / "runs" / name
    leftovers_before = sorted(x.name for x in folder.iterdir() if x.name.startswith(".")) if folder.exists() else ["(no folder)"]
    try:
        run = trainer.load(folder)
        wb = openpyxl.load_workbook(folder / "training.xlsx", read_only=True)["Epochs"]
        wb_epochs = sum(1 for r in wb.iter_rows(min_row=5, values_only=True) if isinstance(r[0], int) and isinstance(r[3], float))
        csv_epochs = len((folder / "history.csv").read_text().splitlines()) - 1
        best = torch.load(folder / "best.pt", weights_only=False)["epoch"]
        consistent = run.epochs == wb_epochs == csv_epochs and best <= run.epochs and max(run.accuracies) == \
            torch.load(folder / "best.pt", weights_only=False)["best"]
        state = f"epochs {run.epochs}, workbook {wb_epochs}, csv {csv_epochs}, best.pt epoch {best}"
    except trainer.RunError as exc:
        consistent, state = not (folder.exists() and (folder / "last.pt").exists()), f"no epoch: {exc}"[:80]
    leftovers_after = sorted(x.name for x in folder.iterdir() if x.name.startswith(".")) if folder.exists() else []
    again = subprocess.run([sys.executable, "-m", "trainer", "run", "--resume", str(folder), "--no-progress", "--threads", "1"]
                           if (folder / "last.pt").exists() else cmd, capture_output=True, text=True, cwd=REPO)
    results.append((trial, sig.name, leftovers_before, state, leftovers_after, consistent, again.returncode))
    print(results[-1], flush=True)
shutil.rmtree(root, ignore_errors=True)
print("consistent:", sum(r[5] for r in results), "of", len(results), "; continued with exit 0:", sum(r[6] == 0 for r in results))
