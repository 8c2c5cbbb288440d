"""What a run reports: its workbook (training.xlsx, through the shared sheetprop workbook layer) and history.csv."""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from xlsxwriter.utility import xl_rowcol_to_cell

from sheetprop.book import Book
from trainer.loop import Evaluation
from trainer.summary import ModelSummary

# the keys of an epoch record, in the order of the Epochs sheet and history.csv
EPOCH_COLUMNS = ["epoch", "lr", "train_loss", "train_acc", "test_loss", "test_acc", "test_correct", "seconds"]
MISCLASSIFIED_SHOWN = 30
DEFAULT_TARGET = 0.994
TARGET_NAME = "target"
PER_ROW = 6


@dataclass
class Contents:
    """What the workbook shows; filled in as the run goes."""

    config: dict[str, Any]
    summary: ModelSummary
    history: list[dict[str, float]] = field(default_factory=list)
    evaluation: Evaluation | None = None
    test_images: np.ndarray | None = None  # uint8 (N, 28, 28)
    test_labels: np.ndarray | None = None
    facts: dict[str, Any] = field(default_factory=dict)  # device, versions, wall time, …
    target: float = DEFAULT_TARGET  # test accuracy drawn as a line on its chart


def _png(image: np.ndarray, scale: int = 3) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).resize((28 * scale, 28 * scale), Image.NEAREST).save(buf, format="PNG")
    return buf.getvalue()


def write(path: str | Path, report: Contents) -> Path:
    """Write the whole workbook atomically (replacing the previous epoch's)."""
    with Book(path, force=True) as book:
        _epochs(book, report)
        _model(book, report)
        _confusion(book, report)
        _misclassified(book, report)
        _config(book, report)
    return Path(path)


def _epochs(book: Book, report: Contents) -> None:
    f = book.formats
    ws = book.add_sheet("Epochs")
    ws.write(0, 0, "Training log", f.title)
    ws.write(1, 0, f"model {report.config['model']}, {report.summary.total_params:,} parameters; "
                   "one row per epoch (accuracies as fractions)", f.note)
    rows = [[h[c] for c in EPOCH_COLUMNS] for h in report.history]
    formats = [f.integer, f.general, f.number, f.percent, f.number, f.percent, f.integer, f.general]
    top = 3
    book.write_table(ws, top, 0, [c.replace("_", " ") for c in EPOCH_COLUMNS], rows, formats, name="epochs")
    ws.set_column(0, len(EPOCH_COLUMNS) - 1, 13)
    if not rows:
        return
    first, last = top + 1, top + len(rows)

    def col(name: str) -> list:
        c = EPOCH_COLUMNS.index(name)
        return ["Epochs", first, c, last, c]

    # the target: an editable cell, drawn as a line across the test-accuracy chart
    line = last + 2
    ws.write(line, 0, "target", f.label)
    ws.write_number(line, 1, report.target, f.percent_input)
    book.define_name(TARGET_NAME, "Epochs", xl_rowcol_to_cell(line, 1, True, True))
    ws.write(line + 1, 0, "target line: epoch, accuracy", f.note)
    for i, epoch in enumerate((report.history[0]["epoch"], report.history[-1]["epoch"])):
        ws.write_number(line + 2 + i, 0, epoch)
        ws.write_formula(line + 2 + i, 1, f"={TARGET_NAME}", f.percent, report.target)
    target = {"name": "target", "categories": ["Epochs", line + 2, 0, line + 3, 0],
              "values": ["Epochs", line + 2, 1, line + 3, 1], "line": {"color": "#C00000", "dash_type": "dash"}}

    charts = [("Training loss", "train_loss", "loss"), ("Training accuracy", "train_acc", "accuracy"),
              ("Test loss", "test_loss", "loss"), ("Test accuracy", "test_acc", "accuracy")]
    for i, (title, column, axis) in enumerate(charts):
        values = [h[column] for h in report.history]
        series = [{"name": title, "categories": col("epoch"), "values": col(column),
                   "marker": {"type": "circle", "size": 4}}]
        if column == "test_acc":
            series.append(target)
            values.append(report.target)
        chart = book.chart(title, series, "epoch", axis, y_log=axis == "loss", x_max=max(len(rows), 1), x_min=1,
                           y_options={"num_format": "0.0%", "max": 1, "min": accuracy_floor(values)}
                           if axis == "accuracy" else None)
        chart.set_size({"width": 480, "height": 290})
        ws.insert_chart(top, len(EPOCH_COLUMNS) + 1, chart, {"x_offset": 490 * (i % 2), "y_offset": 300 * (i // 2)})


def write_csv(path: str | Path, history: list[dict[str, Any]]) -> Path:
    """The epoch records as CSV (what pandas and plotting tools read), written atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, EPOCH_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(history)
    os.replace(tmp, path)
    return path


def accuracy_floor(values: list[float]) -> float:
    """Lower end of an accuracy axis: at or below every value, at a whole half percent."""
    return max(0.0, math.floor(min(values) * 200 + 1e-9) / 200)


def _model(book: Book, report: Contents) -> None:
    f = book.formats
    s = report.summary
    ws = book.add_sheet("Model")
    ws.write(0, 0, f"Model {report.config['model']}: layers, output shapes, parameters, receptive field", f.title)
    rows = [[r.name, r.kind, " × ".join(map(str, r.output_shape)), r.params, r.rf, r.jump, r.macs] for r in s.layers]
    headers = ["layer", "kind", "output shape", "params", "receptive field", "jump", "mult-adds"]
    end = book.write_table(ws, 2, 0, headers, rows, [None, None, None, f.integer, f.integer, f.integer, f.integer],
                           name="layers")
    ws.set_column(0, 0, 24)
    ws.set_column(1, 6, 15)
    ws.write(end, 0, "Total params", f.label)
    ws.write_formula(end, 3, "=SUM(layers[params])", f.integer, s.total_params)
    ws.write(end + 1, 0, "Trainable params", f.label)
    ws.write_number(end + 1, 3, s.trainable_params, f.integer)
    ws.write(end + 2, 0, "Mult-adds per image", f.label)
    ws.write_formula(end + 2, 3, "=SUM(layers[mult-adds])", f.integer, s.total_macs)


def _confusion(book: Book, report: Contents) -> None:
    f = book.formats
    ws = book.add_sheet("Confusion")
    ws.write(0, 0, "Test confusion matrix (rows: true digit, columns: predicted digit)", f.title)
    ev = report.evaluation
    if ev is None:
        ws.write(2, 0, "No epoch has finished yet.", f.note)
        return
    top, left = 3, 1
    ws.write(top - 1, left, "predicted →", f.note)
    for d in range(10):
        ws.write_number(top, left + 1 + d, d, f.header)
        ws.write_number(top + 1 + d, left, d, f.header)
    ws.write(top, 0, "true ↓", f.note)
    ws.write(top, left + 11, "total", f.header)
    ws.write(top, left + 12, "class accuracy", f.header)
    for t in range(10):
        r = top + 1 + t
        for p in range(10):
            ws.write_number(r, left + 1 + p, int(ev.confusion[t, p]))
        first, lastc = xl_rowcol_to_cell(r, left + 1), xl_rowcol_to_cell(r, left + 10)
        total = int(ev.confusion[t].sum())
        ws.write_formula(r, left + 11, f"=SUM({first}:{lastc})", f.integer, total)
        diag = xl_rowcol_to_cell(r, left + 1 + t)
        ws.write_formula(r, left + 12, f"=IF({xl_rowcol_to_cell(r, left + 11)}>0,{diag}/{xl_rowcol_to_cell(r, left + 11)},0)",
                         f.percent, float(ev.confusion[t, t] / total) if total else 0.0)
    ws.conditional_format(top + 1, left + 1, top + 10, left + 10,
                          {"type": "3_color_scale", "min_color": "#FFFFFF", "mid_color": "#F8CBAD",
                           "max_color": "#63BE7B", "mid_type": "num", "mid_value": 1})
    ws.conditional_format(top + 1, left + 12, top + 10, left + 12, {"type": "data_bar", "bar_color": "#63BE7B"})
    ws.set_column(left + 1, left + 10, 6)
    ws.set_column(left + 11, left + 12, 14)
    r = top + 12
    ws.write(r, 0, "accuracy", f.label)
    cells = ",".join(xl_rowcol_to_cell(top + 1 + d, left + 1 + d) for d in range(10))
    ws.write_formula(r, left + 1, f"=SUM({cells})/SUM({xl_rowcol_to_cell(top + 1, left + 1)}:"
                                  f"{xl_rowcol_to_cell(top + 10, left + 10)})", f.percent, ev.accuracy)


def _misclassified(book: Book, report: Contents) -> None:
    f = book.formats
    ws = book.add_sheet("Misclassified")
    ev = report.evaluation
    ws.write(0, 0, "Misclassified test images, most confident mistakes first", f.title)
    if ev is None or report.test_images is None:
        ws.write(2, 0, "No epoch has finished yet.", f.note)
        return
    wrong = np.flatnonzero(ev.predictions != report.test_labels)
    shown = wrong[np.argsort(-ev.confidences[wrong])][:MISCLASSIFIED_SHOWN]
    ws.write(1, 0, f"{len(wrong)} of {ev.total} test images wrong; showing {len(shown)}", f.note)
    for c in range(PER_ROW):
        ws.set_column(c, c, 16)
    for i, idx in enumerate(shown):
        row, col = 3 + (i // PER_ROW) * 6, i % PER_ROW
        ws.set_row(row, 68)
        book.picture(ws, row, col, _png(report.test_images[idx]), name=f"test{idx}.png")
        ws.write(row + 1, col, f"#{idx}: true {report.test_labels[idx]}")
        ws.write(row + 2, col, f"predicted {ev.predictions[idx]}", f.label)
        ws.write(row + 3, col, f"confidence {ev.confidences[idx]:.1%}", f.note)


def _config(book: Book, report: Contents) -> None:
    f = book.formats
    ws = book.add_sheet("Config")
    ws.write(0, 0, "Run configuration", f.title)
    items = list(report.config.items()) + list(report.facts.items())
    end = book.write_table(ws, 2, 0, ["setting", "value"], [[k, v if isinstance(v, (int, float)) else str(v)]
                                                           for k, v in items], name="config")
    ws.set_column(0, 0, 22)
    ws.set_column(1, 1, 40)
    ws.write(end, 0, "Every setting above can go in a run template: trainer run --config FILE", f.note)
