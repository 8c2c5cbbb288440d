"""trainer: a small MNIST CNN, trained fast, reported in the sheetprop workbook format.

The Python API (the ``trainer`` command calls the same functions; torch loads on first use)::

    import trainer
    run = trainer.train(data_dir="mnist", epochs=15)   # a Run: run.path, run.history, run.test_accuracy
    trainer.resume(run.path)                           # continue a stopped run
    trainer.sweep(seeds="1-5", jobs=2, data_dir="mnist")
    trainer.compare(["outputs/runs/a", "outputs/runs/b"])
"""

import os
import sys
from typing import Any

__version__ = "0.1.0"

# Before torch loads its OpenMP runtime: threads that wait between parallel regions sleep instead of
# spinning. Spinning threads collapse when another process shares the cores (2 threads beside a second
# training: 462 images/s, sleeping: 1,627, one thread: 1,576; alone 2,485 / 2,365 / 1,731), see
# benchmarks/trainer_threads.py. A value the user set is kept. With torch imported first it comes too late
# (OpenMP has read its settings), and a run on the CPU says so (trainer.device.thread_policy_note).
SPINNING = "torch" in sys.modules and "OMP_WAIT_POLICY" not in os.environ
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__all__ = ["train", "resume", "sweep", "compare", "load", "configure", "Run", "RunConfig", "Comparison",
           "Interrupted", "ProcessesFailed", "ConfigError", "RunError", "DataError", "DeviceError", "SweepError",
           "CompareError", "NaNLoss", "__version__"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from trainer import api

        return getattr(api, name)
    raise AttributeError(f"module 'trainer' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
