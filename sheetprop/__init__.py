"""sheetprop: backpropagation written out as a live Excel workbook."""

__version__ = "0.1.0"
