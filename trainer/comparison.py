"""Compare run folders in one workbook: a row per run, a summary per configuration, native charts.

Everything derived is a formula over the per-epoch values (the Curves sheet), so editing the
target accuracy on the Runs sheet recounts every run and configuration.
"""

from __future__ import annotations

import os
import statistics
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from xlsxwriter.utility import quote_sheetname, xl_range_abs, xl_rowcol_to_cell

from sheetprop.book import Book
from sheetprop.wording import plural
from trainer.report import DEFAULT_TARGET, TARGET_NAME, accuracy_floor
from trainer.runfolder import Run, RunError, read_run

RUNS, SUMMARY, CURVES = "Runs", "Summary", "Curves"


class CompareError(ValueError):
    """A folder that is not a run, or runs that cannot be compared; the message names it."""


@dataclass(frozen=True)
class Comparison:
    """Runs compared in one workbook, and what could not be read."""

    runs: list[Run]
    workbook: Path
    target: float  # test accuracy, a fraction
    skipped: list[str] = field(default_factory=list)  # one line per argument left out, saying why
    failed: list[str] = field(default_factory=list)  # runs of a sweep that stopped with an error

    def table(self) -> str:
        """The Runs table and one summary line per configuration, as Markdown."""
        return summary_table(self.runs, self.target)

    def configurations(self) -> list[dict[str, Any]]:
        """Per configuration: runs, mean, std and min of their last three accuracies, and how many held the target."""
        keys = varying(self.runs)
        out = []
        for config, members in _grouped(self.runs, keys):
            values = [a for r in members for a in r.last_three]
            out.append({"configuration": config, "runs": len(members), "values": len(values),
                        "mean": statistics.mean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
                        "min": min(values), "held": sum(min(r.last_three) >= self.target for r in members)})
        return out

    def __str__(self) -> str:
        return self.table() + f"\nWrote {self.workbook}"


def read_runs(paths) -> tuple[list[Run], list[str]]:
    """The runs among ``paths`` (other files are passed over), and a line for each folder that holds no
    readable run. Raises :class:`CompareError` when no run is left."""
    runs, skipped = [], []
    for path in map(Path, paths):
        if not path.is_dir():
            if not path.exists():
                skipped.append(f"{path}: no such folder")
            continue  # a file beside the runs, such as compare.xlsx or a log
        try:
            runs.append(read_run(path))
        except RunError as exc:
            skipped.append(str(exc))
    if not runs:
        raise CompareError("no runs to compare" + (": " + "; ".join(skipped) if skipped else ""))
    return runs, skipped


def compare(paths, out: str | Path | None = None, target: float = DEFAULT_TARGET) -> Comparison:
    """Write the comparison workbook of the runs among ``paths`` (``out``: compare.xlsx beside them when they
    share a folder, else in the current one) and return what it compares."""
    paths = [Path(paths)] if isinstance(paths, (str, os.PathLike)) else [Path(p) for p in paths]
    if not 0 <= target <= 1:
        raise CompareError(f"target is a test accuracy from 0 to 1 (0.994 for 99.4%), got {target!r}")
    runs, skipped = read_runs(paths)
    path = write(runs, out or default_output([r.path for r in runs]), target)
    return Comparison(runs, path, target, skipped)


def default_output(run_dirs) -> Path:
    """compare.xlsx beside the runs when they share a folder, else in the current folder."""
    parents = {Path(p).resolve().parent for p in run_dirs}
    return (parents.pop() if len(parents) == 1 else Path.cwd()) / "compare.xlsx"


def varying(runs: list[Run]) -> list[str]:
    """The settings, other than the seed, whose values differ between runs."""
    keys = [k for k in runs[0].settings if k != "seed"]
    return [k for k in keys if len({repr(r.settings.get(k)) for r in runs}) > 1]


def _extra_columns(keys: list[str]) -> list[str]:
    """Varying settings shown in columns of their own (the model always has one)."""
    return [k for k in keys if k != "model"]


def configuration(run: Run, keys: list[str]) -> str:
    """The name of a run's configuration: its values of the varying settings (all runs: its model)."""
    if not keys:
        return run.settings["model"]
    return ", ".join(f"{k}={text(run.settings[k])}" for k in keys)


def text(value: Any) -> str:
    """A setting's value as run and configuration names show it: 0.1, not 0.1000000000000000055."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def summary_table(runs: list[Run], target: float) -> str:
    """The Runs table and one summary line per configuration, as Markdown."""
    keys = varying(runs)
    head = ["run", "model", "params", "seed", *_extra_columns(keys), "test acc, last 3 epochs", "min of last 3",
            f"first epoch ≥ {100 * target:g}%", "best", "wall time"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in runs:
        first = r.first_at(target)
        cells = [r.name, r.settings["model"], f"{r.params:,}", str(r.settings["seed"]),
                 *[text(r.settings[k]) for k in _extra_columns(keys)],
                 " / ".join(f"{100 * a:.2f}%" for a in r.last_three),
                 f"{100 * min(r.last_three):.2f}%", "never" if first is None else str(first),
                 f"{100 * max(r.accuracies):.2f}%", f"{r.seconds:.0f} s"]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for config, members in _grouped(runs, keys):
        values = [a for r in members for a in r.last_three]
        held = sum(min(r.last_three) >= target for r in members)
        spread = statistics.stdev(values) if len(values) > 1 else 0.0
        lines.append(f"{config}: {plural(len(members), 'run')}, last-three test accuracy "
                     f"{100 * statistics.mean(values):.2f}% ± {100 * spread:.2f}% (mean ± std of {len(values)}), "
                     f"min {100 * min(values):.2f}%, {held} of {plural(len(members), 'run')} ≥ {100 * target:g}% on "
                     f"each of the last three epochs")
    return "\n".join(lines)


def _grouped(runs: list[Run], keys: list[str]) -> list[tuple[str, list[Run]]]:
    """Runs by configuration, configurations in order of first appearance."""
    groups: dict[str, list[Run]] = {}
    for r in runs:
        groups.setdefault(configuration(r, keys), []).append(r)
    return list(groups.items())


@dataclass(frozen=True)
class _Layout:
    """Where everything goes: runs in order of configuration, so each configuration's columns are adjacent."""

    runs: list[Run]
    keys: list[str]

    TARGET_ROW = 2
    HEADER_ROW = 4
    CURVE_HEADER_ROW = 2

    @property
    def epochs(self) -> int:
        return max(len(r.history) for r in self.runs)

    def curve_row(self, epoch: int) -> int:
        return self.CURVE_HEADER_ROW + epoch

    # Curves sheet columns: epoch | accuracy per run | target | mean accuracy per configuration | loss per run
    def acc_col(self, i: int) -> int:
        return 1 + i

    @property
    def target_col(self) -> int:
        return 1 + len(self.runs)

    def mean_col(self, g: int) -> int:
        return self.target_col + 1 + g

    def loss_col(self, i: int) -> int:
        return self.mean_col(len(self.groups)) + i

    @cached_property
    def groups(self) -> list[tuple[str, list[Run]]]:
        return _grouped(self.runs, self.keys)

    def curve_range(self, col: int, epochs: int | None = None) -> str:
        last = self.curve_row(epochs or self.epochs)
        return f"{quote_sheetname(CURVES)}!{xl_range_abs(self.curve_row(1), col, last, col)}"

    # Runs sheet columns
    @cached_property
    def run_columns(self) -> list[str]:
        return ["run", "configuration", "model", "params", "seed", *_extra_columns(self.keys), "test acc, 3rd last",
                "2nd last",
                "last", "min of last 3", "first epoch ≥ target", "best", "wall time (s)"]

    def run_col(self, header: str) -> int:
        return self.run_columns.index(header)

    def run_row(self, i: int) -> int:
        return self.HEADER_ROW + 1 + i

    def runs_range(self, header: str) -> str:
        col = self.run_col(header)
        return f"{quote_sheetname(RUNS)}!{xl_range_abs(self.run_row(0), col, self.run_row(len(self.runs) - 1), col)}"


def write(runs: list[Run], path: str | Path, target: float = DEFAULT_TARGET) -> Path:
    """The comparison workbook, written atomically."""
    keys = varying(runs)
    ordered = [r for _, members in _grouped(runs, keys) for r in members]
    layout = _Layout(ordered, keys)
    with Book(path, force=True) as book:
        _runs_sheet(book, layout, target)
        _summary_sheet(book, layout, target)
        _curves_sheet(book, layout, target)
    return Path(path)


def _runs_sheet(book: Book, lay: _Layout, target: float) -> None:
    f = book.formats
    ws = book.add_sheet(RUNS)
    ws.write(0, 0, f"{plural(len(lay.runs), 'run')} compared", f.title)
    ws.write(1, 0, "Every number right of the settings is a formula over the Curves sheet; edit the target to "
                   "recount.", f.note)
    ws.write(lay.TARGET_ROW, 0, "Target test accuracy", f.label)
    ws.write_number(lay.TARGET_ROW, 1, target, f.percent_input)
    ws.set_column(0, 1, 26)
    ws.set_column(2, len(lay.run_columns), 12)
    book.define_name(TARGET_NAME, RUNS, xl_rowcol_to_cell(lay.TARGET_ROW, 1, True, True))
    book.write_row(ws, lay.HEADER_ROW, 0, lay.run_columns, f.header)
    ws.set_row(lay.HEADER_ROW, 30)
    for i, r in enumerate(lay.runs):
        row, n = lay.run_row(i), len(r.history)
        values = [r.name, configuration(r, lay.keys), r.settings["model"], r.params, r.settings["seed"],
                  *[r.settings[k] for k in _extra_columns(lay.keys)]]
        for c, v in enumerate(values):
            ws.write(row, c, v)
        last = lay.run_col("test acc, 3rd last")
        for j, epoch in enumerate(range(n - 2, n + 1)):
            if epoch >= 1:
                ws.write_formula(row, last + j, f"={CURVES}!{xl_rowcol_to_cell(lay.curve_row(epoch), lay.acc_col(i))}",
                                 f.percent, r.history[epoch - 1]["test_acc"])
        cells = f"{xl_rowcol_to_cell(row, last)}:{xl_rowcol_to_cell(row, last + 2)}"
        ws.write_formula(row, lay.run_col("min of last 3"), f"=MIN({cells})", f.percent, min(r.last_three))
        accs = lay.curve_range(lay.acc_col(i), n)
        epochs = lay.curve_range(0, n)
        first = r.first_at(target)
        ws.write_array_formula(row, lay.run_col("first epoch ≥ target"), row, lay.run_col("first epoch ≥ target"),
                               f'{{=IFERROR(INDEX({epochs},MATCH(TRUE,{accs}>={TARGET_NAME},0)),"never")}}', None,
                               "never" if first is None else first)
        ws.write_formula(row, lay.run_col("best"), f"=MAX({accs})", f.percent, max(r.accuracies))
        ws.write_number(row, lay.run_col("wall time (s)"), round(r.seconds, 1))
    ws.freeze_panes(lay.HEADER_ROW + 1, 1)


def _summary_sheet(book: Book, lay: _Layout, target: float) -> None:
    f = book.formats
    ws = book.add_sheet(SUMMARY)
    ws.write(0, 0, "Per configuration: the last three test accuracies of every run", f.title)
    ws.write(1, 0, "Formulas over the Runs sheet; 'held' counts runs at or above the target on each of their last "
                   "three epochs.", f.note)
    headers = ["configuration", "runs", "values", "mean", "std", "min", "runs that held the target"]
    book.write_row(ws, 3, 0, headers, f.header)
    ws.set_row(3, 30)
    ws.set_column(0, 0, 30)
    ws.set_column(1, 6, 14)
    cfg = lay.runs_range("configuration")
    accs = [lay.runs_range(h) for h in ("test acc, 3rd last", "2nd last", "last")]
    mins = lay.runs_range("min of last 3")
    for g, (name, members) in enumerate(lay.groups):
        row = 4 + g
        here = xl_rowcol_to_cell(row, 0)
        values = [a for r in members for a in r.last_three]
        mean = statistics.mean(values)
        n, mean_cell = xl_rowcol_to_cell(row, 2), xl_rowcol_to_cell(row, 3)
        ws.write_string(row, 0, name)
        ws.write_formula(row, 1, f"=COUNTIF({cfg},{here})", f.integer, len(members))
        # array formulas: Gnumeric reads a comparison of ranges inside SUMPRODUCT as one cell of its row
        ws.write_array_formula(row, 2, row, 2, "{=" + "+".join(f"SUM(({cfg}={here})*ISNUMBER({a}))" for a in accs)
                               + "}", f.integer, len(values))
        ws.write_formula(row, 3, "=(" + "+".join(f"SUMIF({cfg},{here},{a})" for a in accs) + f")/{n}", f.percent, mean)
        squares = "+".join(f"SUM(({cfg}={here})*ISNUMBER({a})*({a}-{mean_cell})^2)" for a in accs)
        ws.write_array_formula(row, 4, row, 4, f'{{=IF({n}>1,SQRT(({squares})/({n}-1)),0)}}', f.percent,
                               statistics.stdev(values) if len(values) > 1 else 0.0)
        ws.write_array_formula(row, 5, row, 5, f"{{=MIN(IF({cfg}={here},{mins}))}}", f.percent,
                               min(min(r.last_three) for r in members))
        ws.write_formula(row, 6, f'=COUNTIFS({cfg},{here},{mins},">="&{TARGET_NAME})', f.integer,
                         sum(min(r.last_three) >= target for r in members))
    top = 6 + len(lay.groups)
    accuracy = [_series(r, lay.curve_range(0), lay.curve_range(lay.acc_col(i))) for i, r in enumerate(lay.runs)]
    line = {"name": "target", "categories": lay.curve_range(0), "values": lay.curve_range(lay.target_col),
            "line": {"color": "#C00000", "dash_type": "dash", "width": 1.25}}
    floor = accuracy_floor([a for r in lay.runs for a in r.accuracies] + [target])
    axis = {"min": floor, "max": 1, "num_format": "0.0%"}
    x_max = max(lay.epochs, 2)  # an axis from 1 to 1 would hide a one-epoch run at its edge
    charts = [
        book.chart("Test accuracy of every run", accuracy + [line], "epoch", "test accuracy", x_max=x_max,
                   y_options=axis, x_min=1),
        book.chart("Test loss of every run", [_series(r, lay.curve_range(0), lay.curve_range(lay.loss_col(i)))
                                               for i, r in enumerate(lay.runs)],
                   "epoch", "test loss (log)", y_log=True, x_max=x_max, x_min=1),
        book.chart("Mean test accuracy per configuration", [
            {"name": name, "categories": lay.curve_range(0), "values": lay.curve_range(lay.mean_col(g)),
             **(_DOTS if max(len(r.history) for r in members) == 1 else {})}
            for g, (name, members) in enumerate(lay.groups)] + [line], "epoch", "test accuracy", x_max=x_max,
            y_options=axis, x_min=1),
    ]
    for i, chart in enumerate(charts):
        chart.set_size({"width": 620, "height": 360})
        ws.insert_chart(top + 19 * i, 0, chart)


_DOTS = {"marker": {"type": "circle", "size": 5}}  # a curve of one point has no line to show


def _series(run: Run, categories: str, values: str) -> dict[str, Any]:
    """One run's curve in a chart; a run of a single epoch is drawn as a dot."""
    return {"name": run.name, "categories": categories, "values": values, **(_DOTS if run.epochs == 1 else {})}


def _curves_sheet(book: Book, lay: _Layout, target: float) -> None:
    f = book.formats
    ws = book.add_sheet(CURVES)
    ws.write(0, 0, "Test accuracy and loss of every run, epoch by epoch (what the charts and the Runs sheet read)",
             f.title)
    header = lay.CURVE_HEADER_ROW
    ws.write(header, 0, "epoch", f.header)
    for i, r in enumerate(lay.runs):
        ws.write(header, lay.acc_col(i), f"{r.name} acc", f.header)
        ws.write(header, lay.loss_col(i), f"{r.name} loss", f.header)
    ws.write(header, lay.target_col, "target", f.header)
    for g, (name, _) in enumerate(lay.groups):
        ws.write(header, lay.mean_col(g), f"mean: {name}", f.header)
    ws.set_column(0, lay.loss_col(len(lay.runs)), 14)
    first_of_group = 0
    spans = []
    for _, members in lay.groups:
        spans.append((lay.acc_col(first_of_group), lay.acc_col(first_of_group + len(members) - 1), members))
        first_of_group += len(members)
    for epoch in range(1, lay.epochs + 1):
        row = lay.curve_row(epoch)
        ws.write_number(row, 0, epoch)
        for i, r in enumerate(lay.runs):
            if epoch <= len(r.history):
                ws.write_number(row, lay.acc_col(i), r.history[epoch - 1]["test_acc"], f.percent)
                ws.write_number(row, lay.loss_col(i), r.history[epoch - 1]["test_loss"], f.number)
        ws.write_formula(row, lay.target_col, f"={TARGET_NAME}", f.percent, target)
        for g, (first, last, members) in enumerate(spans):
            present = [r.history[epoch - 1]["test_acc"] for r in members if epoch <= len(r.history)]
            if present:  # past the group's longest run the cell stays empty: a gap in the chart, not #DIV/0!
                ws.write_formula(row, lay.mean_col(g), f"=AVERAGE({xl_rowcol_to_cell(row, first)}:"
                                                       f"{xl_rowcol_to_cell(row, last)})", f.percent,
                                 statistics.mean(present))
    ws.freeze_panes(header + 1, 1)
