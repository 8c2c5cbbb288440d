"""The shared workbook layer: formats, texts every engine shows as written, tables, native charts, pictures
and an atomic save.

Both tools write their workbooks through :class:`Book`, so they share one look. A book is
written to a temporary file beside its target and renamed over it only when complete: a
failure at any point leaves the previous file (or nothing) in place, never half a workbook.
"""

from __future__ import annotations

import io
import os
import re
import signal
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import xlsxwriter
from xlsxwriter.format import Format
from xlsxwriter.worksheet import Worksheet

from sheetprop import wording


class OutputError(OSError):
    """The output file cannot be written; the message says why in one line."""


INPUT = {"bg_color": "#FFF2CC", "font_color": "#0000CC", "border": 1}  # the look of a cell the reader may edit
# Where text could be read as an escape: Excel reads _xHHHH_ as the character HHHH, LibreOffice also _xH_ … _xHHHH_
# (input_x1_s1 shows as "input\x01s1"), Gnumeric none; the text is cut there, after the underscore.
_ESCAPE = re.compile(r"(?<=_)(?=[xX][0-9A-Fa-f]+_)")


class TextWorksheet(Worksheet):
    """A worksheet whose every text shows as written in Excel, LibreOffice and Gnumeric.

    A text that holds an escape's shape (``_x1_``, ``_x00A1_``) is written as runs of rich text cut after
    each such underscore, in the cell's own font: no run holds the shape, and the runs read back as one text.
    (xlsxwriter would write ``_x005F_x00A1_`` instead, which Gnumeric shows as it stands.)"""

    def _write_string(self, row: int, col: int, string: str, cell_format: Format | None = None) -> int:
        runs = _ESCAPE.split(string)
        if len(runs) == 1:
            return super()._write_string(row, col, string, cell_format)
        font = cell_format or Format()
        return self._write_rich_string(row, col, *[part for run in runs for part in (font, run)],
                                       *([cell_format] if cell_format else []))


@dataclass(frozen=True)
class Formats:
    title: Format
    subtitle: Format
    note: Format
    text: Format
    header: Format
    group: Format
    input: Format
    percent_input: Format
    integer_input: Format
    scientific_input: Format
    number: Format
    integer: Format
    percent: Format
    label: Format
    node: Format
    general: Format

    @classmethod
    def create(cls, wb: xlsxwriter.Workbook) -> "Formats":
        header = {"bold": True, "bg_color": "#DDEBF7", "border": 1, "align": "center", "valign": "vcenter"}
        return cls(
            title=wb.add_format({"bold": True, "font_size": 16, "font_color": "#1F3864"}),
            subtitle=wb.add_format({"bold": True, "font_size": 12, "font_color": "#2F5597"}),
            note=wb.add_format({"italic": True, "font_color": "#595959"}),
            text=wb.add_format({}),
            header=wb.add_format({**header, "text_wrap": True}),
            group=wb.add_format({**header, "bg_color": "#BDD7EE"}),
            input=wb.add_format({**INPUT, "num_format": "0.000###"}),
            percent_input=wb.add_format({**INPUT, "num_format": "0.00%"}),
            integer_input=wb.add_format({**INPUT, "num_format": "0"}),
            scientific_input=wb.add_format({**INPUT, "num_format": "0.0E+00"}),
            number=wb.add_format({"num_format": "0.000000000"}),
            integer=wb.add_format({"num_format": "0"}),
            percent=wb.add_format({"num_format": "0.00%"}),
            label=wb.add_format({"bold": True}),
            node=wb.add_format({"bold": True, "align": "center", "valign": "vcenter", "border": 2,
                                "bg_color": "#E2EFDA", "font_size": 12}),
            general=wb.add_format({"num_format": "General"}),
        )


def check_target(path: Path, force: bool) -> Path:
    """Refuse an existing file without ``force`` and a folder that does not exist."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{path} is a folder; give a file name such as {path / 'book.xlsx'}")
    if path.exists() and not force:
        raise OutputError(f"{path} already exists; use {wording.setting('force')} to overwrite it")
    if not path.parent.is_dir():
        raise OutputError(f"folder {path.parent} does not exist")
    if path.suffix.lower() != ".xlsx":
        raise OutputError(f"{path} must end in .xlsx")
    return path


class Book:
    """An xlsxwriter workbook written atomically to ``path`` (use as a context manager).

    ``constant_memory`` keeps one row per sheet in memory: every sheet must then be written row
    by row. While the book is open, SIGTERM and SIGHUP end the program through ``SystemExit``, so
    the temporary file is removed then too (as it is on Ctrl-C and on any error).
    """

    def __init__(self, path: str | os.PathLike, force: bool = False, constant_memory: bool = False) -> None:
        self.path = check_target(Path(path), force)
        try:
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.stem}.", suffix=".xlsx.tmp")
        except OSError as exc:
            raise OutputError(f"cannot write in {self.path.parent}: {exc.strerror}") from None
        os.close(fd)
        self._tmp = Path(tmp)
        self._scratch = tempfile.TemporaryDirectory(prefix="sheetprop-")  # xlsxwriter's own temporary files
        self.workbook = xlsxwriter.Workbook(str(self._tmp), {"default_date_format": "yyyy-mm-dd hh:mm",
                                                             "constant_memory": constant_memory,
                                                             "tmpdir": self._scratch.name})
        self.formats = Formats.create(self.workbook)
        self._labelled: dict[tuple, Format] = {}
        self._scientific: Format | None = None

    def __enter__(self) -> "Book":
        self._handlers = _exit_on_termination()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.save()
            else:
                self.discard()
        finally:
            for sig, handler in self._handlers.items():
                signal.signal(sig, handler)

    def add_sheet(self, name: str, worksheet_class: type[TextWorksheet] = TextWorksheet) -> TextWorksheet:
        """A new sheet that prints landscape, one page wide."""
        ws = self.workbook.add_worksheet(name, worksheet_class=worksheet_class)
        ws.set_landscape()
        ws.set_paper(9)  # A4
        ws.fit_to_pages(1, 0)
        return ws

    def define_name(self, name: str, sheet: str, cell: str) -> None:
        self.workbook.define_name(name, f"={xlsxwriter.utility.quote_sheetname(sheet)}!{cell}")

    def labelled(self, text: str, number_format: str, after: str = "", style: dict[str, Any] | None = None) -> Format:
        """A format that shows a live number between labels ("w1 = 0.15"): the cell stays a number, and a
        label built on it (a title, a chart's series name) follows every edit without turning it into text."""
        def quoted(label: str) -> str:
            return f'"{label.replace(chr(34), chr(39))}"' if label else ""

        # a section for negative numbers, or their minus sign would come before the label
        shown = f"{quoted(text)}{number_format}{quoted(after)};{quoted(text + '-')}{number_format}{quoted(after)}"
        key = (shown, tuple(sorted((style or {}).items())))
        if key not in self._labelled:
            self._labelled[key] = self.workbook.add_format({"num_format": key[0], **(style or {})})
        return self._labelled[key]

    def scientific_beyond(self, ws: Worksheet, first_row: int, first_col: int, last_row: int, last_col: int,
                          small: float = 1e-4, large: float = 1e6) -> None:
        """Show a range's numbers of magnitude below ``small`` (but 0) or from ``large`` in scientific notation,
        where fixed decimals would show 0.000000000 or too many digits. A conditional format over the cells' own:
        a number format with conditions drops or doubles the minus sign in one engine or another."""
        cell = xlsxwriter.utility.xl_rowcol_to_cell(first_row, first_col)
        if self._scientific is None:
            self._scientific = self.workbook.add_format({"num_format": "0.000000E+00"})
        ws.conditional_format(first_row, first_col, last_row, last_col, {
            "type": "formula", "criteria": f"=AND({cell}<>0,OR(ABS({cell})<{small:G},ABS({cell})>={large:G}))",
            "format": self._scientific})

    def write_row(self, ws: Worksheet, row: int, col: int, values: Sequence[Any], fmt: Format | None = None) -> None:
        for i, value in enumerate(values):
            ws.write(row, col + i, value, fmt)

    def write_table(
        self,
        ws: Worksheet,
        row: int,
        col: int,
        headers: Sequence[str],
        rows: Sequence[Sequence[Any]],
        formats: Sequence[Format | None] | None = None,
        name: str | None = None,
    ) -> int:
        """A native Excel table (banded, with filters); returns the row after it."""
        columns = [{"header": h, **({"format": f} if f is not None else {})}
                   for h, f in zip(headers, formats or [None] * len(headers))]
        last = row + max(len(rows), 1)
        options: dict[str, Any] = {"columns": columns, "style": "Table Style Light 9"}
        if rows:
            options["data"] = [list(r) for r in rows]
        if name:
            options["name"] = name
        ws.add_table(row, col, last, col + len(headers) - 1, options)
        return last + 1

    def chart(
        self,
        title: str | None,
        series: Sequence[dict[str, Any]],
        x_title: str,
        y_title: str,
        y_log: bool = False,
        kind: str = "scatter",
        x_max: float | None = None,
        y_options: dict[str, Any] | None = None,
        x_min: float = 0,
        legend: str | None = None,
    ) -> Any:
        """A native chart whose series refer to sheet ranges (``categories``/``values`` in each dict);
        ``y_options`` adds xlsxwriter y-axis settings (``min``, ``max``, ``num_format``, …). Without a
        ``title``, a chart is named by its legend (a series name can be a cell reference, which every
        engine shows; a title reference LibreOffice does not)."""
        chart = self.workbook.add_chart({"type": kind, "subtype": "straight"} if kind == "scatter" else {"type": kind})
        for s in series:
            chart.add_series({"marker": {"type": "none"}, "line": {"width": 1.5}, **s})
        if title is None:
            chart.set_title({"none": True})
        else:
            chart.set_title({"name": title, "name_font": {"size": 12}})
        x_axis: dict[str, Any] = {"name": x_title, "major_gridlines": {"visible": False}}
        if x_max is not None:
            x_axis.update(min=x_min, max=x_max)
        chart.set_x_axis(x_axis)
        y_axis: dict[str, Any] = {"name": y_title, "major_gridlines": {"visible": True, "line": {"color": "#D9D9D9"}}}
        if y_log:
            y_axis["log_base"] = 10
        chart.set_y_axis({**y_axis, **(y_options or {})})
        legend = legend or ("bottom" if len(series) > 1 else None)
        chart.set_legend({"position": legend, "font": {"size": 11, "bold": True}} if legend else {"none": True})
        return chart

    def picture(self, ws: Worksheet, row: int, col: int, png: bytes, scale: float = 1.0, name: str = "image.png") -> None:
        ws.insert_image(row, col, name, {"image_data": io.BytesIO(png), "x_scale": scale, "y_scale": scale,
                                         "object_position": 1})

    def save(self) -> Path:
        """Finish the file and move it over the target in one step."""
        try:
            self.workbook.close()
            os.chmod(self._tmp, 0o666 & ~_umask())
            os.replace(self._tmp, self.path)
        except OSError as exc:
            self.discard()
            raise OutputError(f"cannot write {self.path}: {exc.strerror or exc} (is it open in another program, "
                              "or the disk full?)") from None
        except BaseException:
            self.discard()
            raise
        self._scratch.cleanup()
        return self.path

    def discard(self) -> None:
        try:
            self._tmp.unlink()
        except FileNotFoundError:
            pass
        self._scratch.cleanup()


def _terminate(signum: int, frame) -> None:
    raise SystemExit(128 + signum)


def _exit_on_termination() -> dict[int, Any]:
    """Turn SIGTERM and SIGHUP into SystemExit (so ``finally`` blocks run); returns the old handlers."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    old = {}
    for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)):
        if sig is not None and signal.getsignal(sig) in (signal.SIG_DFL, None):
            old[sig] = signal.signal(sig, _terminate)
    return old


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
