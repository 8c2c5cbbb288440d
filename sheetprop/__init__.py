"""sheetprop: backpropagation written out as a live Excel workbook.

The Python API (the command line calls the same functions)::

    import sheetprop
    book = sheetprop.build("classic", learning_rates=[0.1, 0.5, 2], iterations=50, out="backprop.xlsx")
    book.summary                      # per learning rate: E_total at the start and the end, first below 0.01
    sheetprop.verify("backprop.xlsx")  # recalculate in LibreOffice, compare with the reference
    grades = sheetprop.grade("submissions/", out="grades.xlsx")  # hand-built workbooks, checked cell by cell
"""

__version__ = "0.1.0"

from sheetprop.api import BuildError, Built, build, grade, list_templates, load  # noqa: E402
from sheetprop.book import OutputError  # noqa: E402
from sheetprop.limits import LimitError  # noqa: E402
from sheetprop.network import Network  # noqa: E402
from sheetprop.template import TemplateError  # noqa: E402
from sheetprop.verification import verify  # noqa: E402

__all__ = ["build", "grade", "load", "list_templates", "verify", "Built", "Network", "BuildError", "LimitError", "OutputError",
           "TemplateError", "__version__"]
