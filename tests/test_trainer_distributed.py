"""Data-parallel training on the CPU with gloo, two processes, generated data."""

import os
import signal
import subprocess
import sys
import time

import openpyxl
import pytest
import torch

from tests.mnist_fixtures import write_mnist
from tests.processes import processes
from trainer import data, distributed, models
from trainer.config import RunConfig
from trainer.step import batch_loss

BATCH = 24


def without_dropout(model: torch.nn.Module) -> torch.nn.Module:
    """Dropout's random masks would differ between the runs compared; everything else is deterministic."""
    for m in model.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    return model


def fixed_batch():
    g = torch.Generator().manual_seed(5)
    return data.Split(torch.randn(BATCH, 1, 28, 28, generator=g), torch.randint(0, 10, (BATCH,), generator=g))


def one_ddp_step(rank: int, port: int, out: str) -> None:
    """Rank ``rank`` of two: one training step of the trainer's model on its part of the batch; save its gradients."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK="0")
    torch.set_num_threads(1)
    world = distributed.from_environment()
    distributed.start(world, torch.device("cpu"))
    torch.manual_seed(rank)  # different initial weights: DistributedDataParallel must hand out rank 0's
    model = distributed.wrap(without_dropout(models.create("tiny")), torch.device("cpu"), world)
    if rank == 0:
        torch.save(distributed.unwrap(model).state_dict(), f"{out}/initial.pt")
    x, y = next(data.batches(fixed_batch(), BATCH, rank=world.rank, world=world.size))
    loss, _ = batch_loss(model(x), y, BATCH, RunConfig(), world)
    loss.backward()
    torch.save({name: p.grad for name, p in distributed.unwrap(model).named_parameters()}, f"{out}/grad{rank}.pt")
    del model
    distributed.stop()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_ranks_average_the_gradients_of_their_shards(tmp_path):
    torch.multiprocessing.spawn(one_ddp_step, args=(free_port(), str(tmp_path)), nprocs=2, join=True)
    ddp = [torch.load(tmp_path / f"grad{r}.pt") for r in range(2)]
    single = without_dropout(models.create("tiny"))
    single.load_state_dict(torch.load(tmp_path / "initial.pt"))
    single.train()
    batch = fixed_batch()
    expected = {name: torch.zeros_like(p) for name, p in single.named_parameters()}
    for shard in (slice(0, BATCH // 2), slice(BATCH // 2, BATCH)):  # each shard alone, its own BatchNorm statistics
        single.zero_grad()
        torch.nn.functional.cross_entropy(single(batch.images[shard]), batch.labels[shard]).backward()
        for name, p in single.named_parameters():
            expected[name] += p.grad / 2
    for name, want in expected.items():
        for rank in range(2):
            torch.testing.assert_close(ddp[rank][name], want, atol=1e-6, rtol=0, msg=f"{name} on rank {rank}")


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory):
    return write_mnist(tmp_path_factory.mktemp("mnist"), n_train=2000, n_test=200, gz=True)


def trainer(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "trainer", "run", "--no-progress", *map(str, args)],
                          capture_output=True, text=True, timeout=300, **kwargs)


def test_a_two_process_run_writes_one_run_folder_like_a_single_process_run(mnist_dir, tmp_path):
    # the device is chosen, so that the test means the same with 0, 1 or several GPUs present
    common = ["--data-dir", mnist_dir, "--epochs", 2, "--batch-size", 64, "--out-dir", tmp_path, "--device", "cpu",
              "--model", "tiny"]
    two = trainer(*common, "--nproc", 2, "--name", "two")
    assert two.returncode == 0, two.stdout + two.stderr
    assert two.stdout.count("Epoch 1:") == 1 and "2 processes (gloo)" in two.stdout  # only rank 0 prints
    one = trainer(*common, "--name", "one")
    assert one.returncode == 0, one.stdout + one.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["one", "two"]
    assert {p.name for p in (tmp_path / "two").iterdir()} == {p.name for p in (tmp_path / "one").iterdir()}
    states = {name: torch.load(tmp_path / name / "last.pt", weights_only=False) for name in ("one", "two")}
    assert set(states["two"]) == set(states["one"]) and states["two"]["processes"] == 2
    assert states["two"]["model"].keys() == states["one"]["model"].keys()
    # the saved model, evaluated here on its own, gives the test loss the run reported
    saved = models.create("tiny")  # the model the run trained
    saved.load_state_dict(states["two"]["model"])
    test = data.load(mnist_dir, torch.device("cpu")).test
    with torch.no_grad():
        loss = float(torch.nn.functional.cross_entropy(saved.eval()(test.images), test.labels))
    assert loss == pytest.approx(states["two"]["history"][-1]["test_loss"], rel=1e-6)
    books = {name: openpyxl.load_workbook(tmp_path / name / "training.xlsx") for name in ("one", "two")}
    assert books["two"].sheetnames == books["one"].sheetnames
    config = {r[0]: r[1] for r in books["two"]["Config"].iter_rows(min_row=4, values_only=True) if r[0]}
    assert config["processes"] == 2 and config["backend"] == "gloo" and config["batch per process"] == 32
    assert config["BatchNorm statistics"] == "per process while training, averaged across processes after each epoch (CPU)"
    assert [h["epoch"] for h in states["two"]["history"]] == [1, 2]


def test_a_killed_two_process_run_resumes_under_torchrun_from_its_last_epoch(mnist_dir, tmp_path):
    args = ["--data-dir", mnist_dir, "--epochs", 5, "--batch-size", 64, "--out-dir", tmp_path, "--name", "k",
            "--device", "cpu", "--model", "tiny"]  # the smallest model: this test is about processes
    proc = subprocess.Popen([sys.executable, "-m", "trainer", "run", "--no-progress", "--nproc", "2", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (tmp_path / "k" / "last.pt").is_file():  # at least one epoch is complete
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    assert err.strip().splitlines()[-1].startswith("Interrupted. The last complete epoch is kept in")
    done = torch.load(tmp_path / "k" / "last.pt", weights_only=False)["epoch"]
    assert 1 <= done < 5
    alone = trainer("--resume", tmp_path / "k")
    assert alone.returncode == 1 and "was trained by 2 processes; resume it with as many (--nproc 2)" in alone.stderr
    resumed = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                              "-m", "trainer", "run", "--no-progress", "--resume", str(tmp_path / "k")],
                             capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"Resuming {tmp_path / 'k'} after epoch {done}" in resumed.stdout
    history = torch.load(tmp_path / "k" / "last.pt", weights_only=False)["history"]
    assert [h["epoch"] for h in history] == list(range(1, 6))


def test_stopping_one_process_stops_the_run_in_one_line(mnist_dir, tmp_path):
    proc = subprocess.Popen([sys.executable, "-m", "trainer", "run", "--no-progress", "--nproc", "2", "--data-dir",
                             str(mnist_dir), "--epochs", "10", "--batch-size", "64", "--out-dir", str(tmp_path),
                             "--name", "w", "--device", "cpu", "--model", "tiny"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (tmp_path / "w" / "last.pt").is_file():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)

    rank_one = processes(str(tmp_path), "RANK=1\0")
    assert len(rank_one) == 1
    os.kill(rank_one[0], signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    assert "Traceback" not in err and "Error" not in err, err
    assert err.strip().splitlines() == [f"Interrupted. The last complete epoch is kept in {tmp_path / 'w'}; continue "
                                        f"with: trainer run --nproc 2 --resume {tmp_path / 'w'}"], err


def test_killing_the_launcher_stops_its_processes(mnist_dir, tmp_path):
    launcher = subprocess.Popen([sys.executable, "-m", "trainer", "run", "--no-progress", "--nproc", "2", "--data-dir",
                                 str(mnist_dir), "--epochs", "10", "--batch-size", "64", "--out-dir", str(tmp_path),
                                 "--name", "L", "--device", "cpu", "--model", "tiny"], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)

    def workers() -> list[int]:
        return [pid for pid in processes(str(tmp_path), "RANK=") if pid != launcher.pid]

    deadline = time.monotonic() + 120
    while not ((tmp_path / "L" / "last.pt").is_file() and len(workers()) == 2):
        assert launcher.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    launcher.send_signal(signal.SIGKILL)
    launcher.wait()
    # they are told at once, not when a collective step times out (10 minutes); under load (another run on the
    # machine) a worker has taken just over 5 s to finish its step and exit
    deadline = time.monotonic() + 30
    while workers():
        assert time.monotonic() < deadline, f"still training after the launcher was killed: {workers()}"
        time.sleep(0.1)
    assert torch.load(tmp_path / "L" / "last.pt", weights_only=False)["epoch"] >= 1


@pytest.mark.parametrize("device", ["cuda", "auto"])
def test_more_processes_than_gpus_on_cuda_is_one_line_before_anything_starts(mnist_dir, tmp_path, monkeypatch,
                                                                            device):
    from click.testing import CliRunner

    from trainer import distributed as launcher
    from trainer.cli import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a machine with one GPU
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(launcher, "launch", lambda *a: pytest.fail("processes were started"))
    result = CliRunner().invoke(main, ["run", "--no-progress", "--nproc", "2", "--device", device, "--data-dir",
                                       str(mnist_dir), "--out-dir", str(tmp_path)])
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert "2 processes on CUDA need as many GPUs, and this machine has 1 (use --nproc 1" in result.output
    assert list(tmp_path.iterdir()) == []
