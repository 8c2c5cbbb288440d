"""trainer: a small MNIST CNN, trained fast, reported in the sheetprop workbook format."""

__version__ = "0.1.0"
