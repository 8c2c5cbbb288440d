"""The README's Python example runs as written (in a fresh folder whose data/ holds a small generated MNIST)."""

import re
from pathlib import Path

from tests.mnist_fixtures import write_mnist

README = Path(__file__).resolve().parent.parent / "README.md"
SECTION = "## Python API (notebooks and scripts)"


def example() -> str:
    """Every ```python block of the README's Python section, in order."""
    text = README.read_text(encoding="utf-8")
    start = text.index(SECTION)
    end = text.find("\n## ", start + len(SECTION))
    blocks = re.findall(r"```python\n(.*?)```", text[start:end if end > 0 else None], flags=re.S)
    assert blocks, f"no ```python block under {SECTION!r}"
    return "\n".join(blocks)


def test_the_readme_python_example_runs(tmp_path, monkeypatch, capsys):
    write_mnist(tmp_path / "data", n_train=512, n_test=100, gz=True)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(example(), str(README), "exec"), scope)
    book, run, sweep = scope["book"], scope["run"], scope["sweep"]
    assert book.path.is_file() and [s.first_below for s in book.summary] == [None, None, 59]
    assert run.epochs == 3 and [h["epoch"] for h in run.history] == [1, 2, 3]
    assert (run.path / "history.csv").is_file() and (run.path / "training.xlsx").is_file()
    assert len(sweep.runs) == 2 and sweep.workbook.is_file() and not sweep.failed
    printed = capsys.readouterr().out
    assert "Wrote backprop.xlsx" in printed and "Done in" in printed
    grades = scope["grades"]
    assert [f.status for f in grades.files] == ["correct", "incomplete"] and grades.exit_code == 1
