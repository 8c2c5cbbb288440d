"""Copy a sheetprop workbook with the Network sheet's diagram set to another iteration and training
sheet, recalculated by LibreOffice (for the README's pictures; a person would type the two numbers).

    python scripts/picked.py IN.xlsx OUT_DIR ITERATION SHEET
"""

import re
import sys
import tempfile
import zipfile
from pathlib import Path

import openpyxl

from sheetprop import recalc
from sheetprop.layout import DIAGRAM_ITERATION, DIAGRAM_SHEET


def main(src: str, out_dir: str, iteration: int, sheet: int) -> None:
    names = openpyxl.load_workbook(src, read_only=True).defined_names
    cells = {next(iter(names[n].destinations))[1].replace("$", ""): v
             for n, v in ((DIAGRAM_ITERATION, iteration), (DIAGRAM_SHEET, sheet))}
    with tempfile.TemporaryDirectory() as tmp:
        edited = Path(tmp) / Path(src).name
        with zipfile.ZipFile(src) as zin, zipfile.ZipFile(edited, "w", zipfile.ZIP_DEFLATED) as zout:
            for item in zin.infolist():
                data = zin.read(item)
                if item.filename == "xl/worksheets/sheet1.xml":  # the Network sheet: set the two inputs' values
                    text = data.decode()
                    for cell, value in cells.items():
                        text, n = re.subn(rf'(<c r="{cell}"[^>]*><v>)[^<]*(</v>)', rf"\g<1>{value}\g<2>", text)
                        assert n == 1, cell
                    data = text.encode()
                zout.writestr(item, data)
        print(recalc.recalculate(edited, out_dir))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
