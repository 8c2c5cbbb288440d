"""The update rule: how a parameter moves from one iteration to the next, written once for the reference
(numpy) and once for the workbook (an Excel formula or readable text), side by side."""

from __future__ import annotations

import numpy as np

from sheetprop.formulas import EXCEL, Style


class GradientDescent:
    """p ← p − η·∂E/∂p."""

    def step(self, param: np.ndarray | float, lr: np.ndarray | float, grad: np.ndarray | float):
        return param - lr * grad

    def formula(self, param: str, lr: str, grad: str, style: Style = EXCEL) -> str:
        return f"{param}{style.minus}{lr}{style.mul}{grad}"


RULE = GradientDescent()
