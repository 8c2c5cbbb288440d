"""A class's grades as people read them: a table in the terminal, and the same in a workbook (a row per file
and table, a column per quantity, the counts of each mistake on top)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

from sheetprop.book import Book
from sheetprop.grading.files import FileGrade, Grades
from sheetprop.grading.judge import Finding, TableGrade
from sheetprop.wording import plural

RIGHT, MISSING = "✓", "—"


def rows(grades: Grades) -> list[tuple[FileGrade, TableGrade | None]]:
    return [(f, t) for f in grades.files for t in (f.tables or [None])]


def result(f: FileGrade, t: TableGrade | None) -> str:
    """One line's verdict: correct, the first mistake and why, or why the file was not graded."""
    if t is None:
        return f"not graded: {f.error}"
    if t.unrecognised:
        return f"not graded: {t.unrecognised}"
    if t.ok:
        half = "with" if t.loss == "l2" else "without"
        return f"correct ({plural(len(t.findings), 'quantity', 'quantities')}; E {half} the ½; η = {t.lr:g})"
    first = t.first
    if first is None:
        todo = [f for f in t.findings if f.status == "not done"]
        blank = [f for f in todo if f.why.startswith("not written yet")] or todo  # the cells left blank themselves
        if todo and not t.mistakes:
            return (f"no mistake; not done yet: {', '.join(f.quantity for f in blank[:6])}"
                    f"{' …' if len(blank) > 6 else ''} (first blank: {min(blank, key=lambda f: f.iteration).cell})")
        return "; ".join(t.mistakes)
    holds = f"{first.holds:.10g}" if isinstance(first.holds, float) else repr(first.holds)
    text = (f"{first.cell} (iteration {first.iteration}) holds {holds} where {first.belongs:.10g} belongs: "
            f"{first.why}")
    return "; ".join(t.mistakes + [text])


def mistakes(grades: Grades) -> Counter:
    """How many tables show each kind of mistake."""
    counts: Counter = Counter()
    for _, t in rows(grades):
        if t is not None:
            counts.update({_kind(m) for m in t.mistakes} | {f.mistake for f in t.findings if f.status == "wrong"})
    return counts


def _kind(mistake: str) -> str:
    """A table's mistake without its numbers and places, to count alike ones together."""
    return re.sub(r" \(.*?\)", "", re.sub(r"η = \S+?(?=[ ,)]|$)", "η = …", mistake))


def summary(grades: Grades) -> str:
    statuses = Counter(f.status for f in grades.files)
    parts = [f"{statuses[s]} {s}" for s in ("correct", "mistakes", "incomplete", "not graded") if statuses[s]]
    return f"{plural(len(grades.files), 'file')}: {', '.join(parts) or 'none'}"


def cell(f: Finding | None) -> str:
    """A quantity's column in the class table: ✓, — (not computed), or its first wrong iteration."""
    if f is None:
        return MISSING
    if f.ok:
        return RIGHT
    if f.status == "not done":
        return f"…{f.iteration}"
    return str(f.iteration) if f.status == "wrong" else f"({f.iteration})"


def text(grades: Grades) -> str:
    """What ``sheetprop grade`` prints: a line per file and table, then the summary and the mistakes' counts."""
    lines = []
    width = max([len(f.path.name) for f in grades.files] + [4])
    for f, t in rows(grades):
        mark = ("?" if t is None or t.unrecognised else "✓" if t.ok else
                "✗" if t.first is not None or t.mistakes or any(x.status == "follows" for x in t.findings) else "…")
        where = t.where if t is not None else ""
        lines.append(f"{mark} {f.path.name:<{width}}  {where:<24}  {result(f, t)}")
        if t is not None and not t.ok and not t.unrecognised:
            own = [x for x in t.findings if x.status == "wrong" and x is not t.first]
            follows = [x for x in t.findings if x.status == "follows"]
            kinds: dict[str, list[Finding]] = {}
            for x in own:  # the same mistake in several columns, said once
                kinds.setdefault(x.mistake, []).append(x)
            if kinds:
                lines.append(f"  {'':<{width}}  {'':<24}  also: " + "; ".join(
                    f"{', '.join(x.quantity for x in xs)} from iteration {xs[0].iteration}: "
                    + ("the same" if t.first is not None and kind == t.first.mistake else xs[0].why)
                    for kind, xs in kinds.items()))
            if follows:
                lines.append(f"  {'':<{width}}  {'':<24}  {plural(len(follows), 'column')} only "
                             f"{'follows' if len(follows) == 1 else 'follow'} from these: {', '.join(x.quantity for x in follows[:8])}{' …' if len(follows) > 8 else ''}")
    lines.append(summary(grades))
    for mistake, n in mistakes(grades).most_common():
        lines.append(f"  {n:>3} × {mistake}")
    return "\n".join(lines)


def write(grades: Grades, out: Path, force: bool = False) -> Path:
    """The class's grades as a workbook: the counts of each mistake, then a row per file and table."""
    quantities: list[str] = []
    for _, t in rows(grades):
        for f in (t.findings if t is not None else []):
            if f.quantity not in quantities:
                quantities.append(f.quantity)
    with Book(out, force=force) as book:
        fm = book.formats
        ws = book.add_sheet("Grades")
        ws.write(0, 0, "Grades", fm.title)
        ws.write(1, 0, f"{summary(grades)}. Per quantity: {RIGHT} right, {MISSING} not computed, a number: the "
                       f"first wrong iteration (in parentheses where it only follows from an earlier mistake; "
                       f"after … where the cells are blank from there on).",
                 fm.note)
        ws.write(3, 0, "Mistakes found", fm.subtitle)
        counts = mistakes(grades).most_common()
        after = book.write_table(ws, 4, 1, ["Tables", "Mistake"], [[n, m] for m, n in counts] or [[0, "none"]],
                                 name="Mistakes")
        headers = ["File", "Table", "Result", "Loss", "η", *quantities, "Notes"]
        table = []
        for f, t in rows(grades):
            by = {x.quantity: x for x in (t.findings if t is not None else [])}
            table.append([str(f.path), t.where if t is not None else "", result(f, t),
                          t.loss if t is not None else "", t.lr if t is not None else "",
                          *[cell(by.get(q)) if t is not None and not t.unrecognised else "" for q in quantities],
                          "; ".join(t.notes) if t is not None else ""])
        ws.write(after + 1, 0, "Files and tables", fm.subtitle)
        book.write_table(ws, after + 2, 0, headers, table, name="Grades")
        ws.set_column(0, 0, 30)
        ws.set_column(1, 1, 22)
        ws.set_column(2, 2, 70)
        centred = book.workbook.add_format({"align": "center"})
        ws.set_column(3, 4 + len(quantities), 6, centred)
        ws.freeze_panes(after + 3, 1)
    return Path(out)
