"""What a build costs before it starts: its formula cells, file size and time, and the largest workbook a
spreadsheet program can open.

The rates are measured on the 2-core machine: about 2.6 µs and 14 bytes per training cell, and 30 µs per
iteration of each optimizer for the reference (a 1-1 network × 100,000 iterations: 0.7 million cells in
4.5 s; classic, 2 optimizers × 2 learning rates × 20,000 iterations: 3.8 million cells in 10.8 s); LibreOffice
took 1.3 GB of memory and 18 s to open and recalculate the 1.86 million cells of classic 6 × 10,000. A program holds every cell in memory, LibreOffice about 620 bytes each, so beyond
:data:`MAX_CELLS` (about 60 GB in LibreOffice; Excel is of the same order) no workstation opens the file.
"""

from __future__ import annotations

from dataclasses import dataclass

from sheetprop import wording

SECONDS_PER_CELL = 2.6e-6
EXERCISE_SECONDS_PER_CELL = 100e-6  # an exercise's cells, each computed and written one by one (classic 2 × 1,000: 6.5 s)
SECONDS_PER_STEP = 30e-6  # one iteration of one optimizer in the reference, every learning rate at once
BYTES_PER_CELL = 14
OPEN_BYTES_PER_CELL = 620  # LibreOffice's memory per formula cell, measured
MAX_CELLS = 100_000_000
LONG = 10.0  # seconds: a build expected to take longer says so first and shows its progress


@dataclass(frozen=True)
class Cost:
    """The expected size of a build."""

    cells: int  # formula cells in the training sheets
    steps: int = 0  # iterations × optimizers of the reference
    exercise: bool = False

    @property
    def seconds(self) -> float:
        per_cell = EXERCISE_SECONDS_PER_CELL if self.exercise else SECONDS_PER_CELL
        return self.cells * per_cell + self.steps * SECONDS_PER_STEP

    @property
    def bytes(self) -> int:
        return self.cells * BYTES_PER_CELL

    @property
    def long(self) -> bool:
        return self.seconds > LONG

    @property
    def openable(self) -> bool:
        return self.cells <= MAX_CELLS

    def __str__(self) -> str:
        return (f"{wording.plural(self.cells, 'formula cell')}: a file of about {size(self.bytes)}, written in "
                f"about {duration(self.seconds)}")

    def refusal(self) -> str:
        return (f"{self.cells:,} formula cells would need about {size(self.cells * OPEN_BYTES_PER_CELL)} of memory "
                f"to open in LibreOffice or Excel; at most {MAX_CELLS:,} can be opened (fewer iterations, "
                f"learning rates or optimizers)")


def size(n: float) -> str:
    """Bytes as people read them: 26 MB, 1.4 GB."""
    for unit in ("bytes", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" or n >= 10 else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError


def duration(seconds: float) -> str:
    """1 s, 40 s, 3 min, 2.5 h."""
    if seconds < 90:
        return f"{max(seconds, 1):.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
