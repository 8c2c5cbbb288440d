"""What a run shows while it trains: progress bars where they can be shown, and the threads' waiting policy."""

import os
import subprocess
import sys
import warnings

from tests.mnist_fixtures import write_mnist
from trainer import progress


def test_a_notebook_without_ipywidgets_gets_a_plain_bar_that_redraws_rarely(tmp_path, monkeypatch, capsys):
    import trainer

    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    monkeypatch.setattr(progress, "has_widgets", lambda: False)
    data = write_mnist(tmp_path / "mnist", n_train=1280, n_test=100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # tqdm.auto warned here (TqdmWarning: IProgress not found)
        trainer.train(data_dir=str(data), epochs=2, batch_size=16, model="tiny", out_dir=str(tmp_path / "runs"),
                      name="nb", echo=None)
    drawn = capsys.readouterr().err
    # 80 batches an epoch, the bar's numbers read every 20: 4 redraws an epoch before; now its first and last
    assert drawn.count("Epoch 1:") <= 2 and drawn.count("Epoch 2:") <= 2, drawn


def test_a_notebook_with_ipywidgets_gets_widgets(monkeypatch):
    monkeypatch.setattr(progress, "in_notebook", lambda: True)
    monkeypatch.setattr(progress, "has_widgets", lambda: True)
    made = []
    monkeypatch.setattr("tqdm.notebook.tqdm", lambda **options: made.append(options) or "widget")
    assert progress.progress_bar(total=3, desc="Epoch 1") == "widget" and made == [{"total": 3, "desc": "Epoch 1"}]


def test_importing_torch_before_trainer_is_said_where_it_slows_training(tmp_path):
    data = write_mnist(tmp_path / "mnist", n_train=64, n_test=32)
    train = (f"trainer.train(data_dir={str(data)!r}, epochs=1, batch_size=32, model='tiny', threads=2, "
             f"out_dir={str(tmp_path)!r}, progress=False, scheduler='step')")
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    first = subprocess.run([sys.executable, "-c", f"import torch, trainer; {train}"], capture_output=True,
                           text=True, env=env, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "torch was imported before trainer, so OpenMP's idle threads spin" in first.stdout
    assert "use threads=1" in first.stdout
    after = subprocess.run([sys.executable, "-c", f"import trainer, torch; {train}"], capture_output=True, text=True,
                           env=env, timeout=300)
    assert after.returncode == 0 and "idle threads spin" not in after.stdout, after.stdout + after.stderr
