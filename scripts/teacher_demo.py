"""The README's teacher walk-through, made real: a class folder of hand-built workbooks to grade, and an
exercise a student has partly filled in (two rows right, one gradient wrong).

    python scripts/teacher_demo.py outputs/teacher             # then: sheetprop grade outputs/teacher/class
    python scripts/teacher_demo.py outputs/teacher --render docs   # and the README's two pictures

The class's workbooks are written the way students write them (tests/students.py: five layouts, the usual
mistakes) and saved by LibreOffice, which computes their values as a spreadsheet program would.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import openpyxl
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sheetprop  # noqa: E402
from sheetprop.layout import training_layouts  # noqa: E402
from sheetprop.quantities import A, Delta, Grad, Param  # noqa: E402
from sheetprop.grading.report import write as write_grades  # noqa: E402
from sheetprop.recalc import recalculate_all  # noqa: E402
from tests.students import LAYOUTS, write  # noqa: E402

CLASS = {  # student → (layout, mistake)
    "ada": ("mazur rows", "correct"),
    "ben": ("mazur rows", "a_h1 for a_h2"),
    "chloe": ("side by side", "w6 w7 swapped"),
    "dev": ("columns", "drifting η"),
    "emma": ("repeated with factors", "constants"),
    "femi": ("biases, no half, typed η", "correct"),
    "gus": ("mazur rows", "parentheses"),
}


def class_folder(out: Path) -> Path:
    folder = out / "class"
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    with tempfile.TemporaryDirectory() as tmp:
        typed = [write(Path(tmp) / f"{name}.xlsx", LAYOUTS[layout], mistake) for name, (layout, mistake) in
                 CLASS.items()]
        recalculate_all(typed, folder)
    sheetprop.build(learning_rates=[0.5, 2], iterations=10, out=folder / "hana.xlsx")  # built with sheetprop
    (folder / "ivan.xls").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504))  # an old .xls
    return folder


def partly_filled(out: Path) -> Path:
    """An exercise (classic, η = 0.5, 6 iterations): iterations 0 and 1 written, ∂E/∂w3 wrong in both (it uses
    a_h1·(1 − a_h1) where a_h2·(1 − a_h2) belongs), the rest still blank."""
    net = sheetprop.load("classic")
    exercise = sheetprop.build(net, [0.5], 6, out / "exercise.xlsx", force=True, exercise=True).path
    full = sheetprop.build(net, [0.5], 6, out / "full.xlsx", force=True).path
    layout = training_layouts(net, 1, 6)[0]
    wb, answers = openpyxl.load_workbook(exercise), openpyxl.load_workbook(full)
    ws, right = wb[layout.sheet], answers[layout.sheet]
    col = {q: layout.cell(q, 0).rstrip("0123456789") for q in (Grad(Param(1, 1, 0)), Delta(2, 0), Delta(2, 1),
                                                                   Param(2, 0, 1), Param(2, 1, 1), A(1, 0))}
    for k in (0, 1):
        r = layout.row(k) + 1
        for cell in ws[r]:
            if cell.value is None and right[cell.coordinate].value is not None:
                cell.value = right[cell.coordinate].value
        g, d1, d2 = col[Grad(Param(1, 1, 0))], col[Delta(2, 0)], col[Delta(2, 1)]
        w6, w8, a_h1 = col[Param(2, 0, 1)], col[Param(2, 1, 1)], col[A(1, 0)]
        ws[f"{g}{r}"] = f"=({d1}{r}*{w6}{r}+{d2}{r}*{w8}{r})*{a_h1}{r}*(1-{a_h1}{r})*input_i1"
    wb.save(out / "exercise-partly-filled.xlsx")
    full.unlink()
    return out / "exercise-partly-filled.xlsx"


def render(exercise: Path, grades: Path, docs: Path) -> None:
    """docs/exercise.png (the partly filled sheet: its weights, its backward pass and its checks) and
    docs/grades.png (the top of the class's grades), rendered by LibreOffice after recalculating."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        computed = recalculate_all([exercise], tmp / "computed")[0]  # LibreOffice shows what it saved
        for book in (computed, grades):
            subprocess.run(["soffice", f"-env:UserInstallation=file://{tmp}/profile", "--headless", "--convert-to",
                            "pdf", "--outdir", str(tmp), str(book)], check=True, capture_output=True)
        page = 4  # Network, Equations, Compare, then Training 1
        subprocess.run(["pdftoppm", "-png", "-r", "400", "-f", str(page), "-l", str(page), "-singlefile",
                        str(tmp / f"{computed.stem}.pdf"), str(tmp / "exercise")], check=True)
        subprocess.run(["pdftoppm", "-png", "-r", "300", "-f", "1", "-l", "1", "-singlefile",
                        str(tmp / f"{grades.stem}.pdf"), str(tmp / "grades")], check=True)
        sheet = Image.open(tmp / "exercise.png")
        title, rows = sheet.crop((279, 290, 1400, 335)), (340, 505)
        parts = [sheet.crop((x0, rows[0], x1, rows[1])) for x0, x1 in ((279, 1150), (2240, 3430), (3480, 4380))]
        out = Image.new("RGB", (sum(p.width for p in parts) + 40, rows[1] - rows[0] + 55), "white")
        out.paste(title, (0, 0))
        x = 0
        for part in parts:
            out.paste(part, (x, 50))
            x += part.width + 20
        out.save(docs / "exercise.png")
        Image.open(tmp / "grades.png").crop((205, 215, 1500, 595)).save(docs / "grades.png")


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "outputs/teacher")
    out.mkdir(parents=True, exist_ok=True)
    folder = class_folder(out)
    exercise = partly_filled(out)
    print(folder)
    print(exercise)
    if "--render" in sys.argv:
        docs = Path(sys.argv[sys.argv.index("--render") + 1])
        grades = write_grades(sheetprop.grade(folder, progress=False), out / "grades.xlsx", force=True)
        render(exercise, grades, docs)
        print(docs / "exercise.png", docs / "grades.png")


if __name__ == "__main__":
    main()
