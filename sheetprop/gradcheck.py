"""How the Gradient check sheet judges a parameter: the rounding a central difference carries at a step h,
the units a ±h pass moves across a kink, and the verdict, each written once in numpy (the cached value) and
once as an Excel formula, side by side.

A central difference c = (E(p + h) − E(p − h)) / 2h of a correct backpropagated gradient g is off by its
truncation error h²·E‴/6 (about 1e-11 at h = 1e-5) and by the rounding of E magnified by 1/h. LibreOffice
returns exactly 0 for a difference of two numbers within 2^-48 of each other, and each engine rounds the
forward pass its own way, so the rounding of c is bounded by :data:`ROUNDING`·max|E(p ± h)|/h (a margin of
four over LibreOffice's own). A difference |c − g| within that level plus :data:`AGREE` relative is what
rounding and truncation alone explain. Where the level reaches g itself, c cannot tell a right gradient
from a wrong one at this h. Where a ±h pass moves a ReLU-like unit across z = 0, the function has a kink
there: c straddles it and need not equal the one-sided derivative backpropagation (and torch) takes.
"""

from __future__ import annotations

import numpy as np

ROUNDING = 2.0**-46  # the rounding level of E(p ± h), relative to |E|
AGREE = 1e-6  # the relative difference a correct gradient stays within beyond rounding (truncation included)
AGREES, BELOW_ROUNDING, AT_A_KINK, DISAGREES = "agrees", "below rounding", "at a kink", "disagrees"


def level(plus: np.ndarray, minus: np.ndarray, central: np.ndarray, backprop: np.ndarray, h: float) -> np.ndarray:
    """The relative difference rounding alone can explain (1 where it reaches the gradient itself)."""
    scale = np.maximum(np.maximum(np.abs(central), np.abs(backprop)), 1e-300)
    return np.minimum(1.0, ROUNDING * np.maximum(np.abs(plus), np.abs(minus)) / h / scale)


def verdict(relative: float, rounding: float, kinks: float) -> str:
    if relative <= AGREE:  # two zeros included
        return AGREES
    if rounding >= 1:
        return BELOW_ROUNDING
    if relative <= rounding + AGREE:
        return AGREES
    return AT_A_KINK if kinks > 0 else DISAGREES


def level_formula(plus: str, minus: str, central: str, backprop: str, h: str) -> str:
    return (f"=MIN(1,{ROUNDING!r}*MAX(ABS({plus}),ABS({minus}))/{h}/"
            f"MAX(ABS({central}),ABS({backprop}),1E-300))")


def kinks_formula(pairs: list[tuple[str, str]]) -> str:
    """How many of the (z at p + h, z at p − h) cells lie on different sides of 0 (0 counts as the left)."""
    return "=" + ("+".join(f"(({plus}>0)<>({minus}>0))" for plus, minus in pairs) or "0")


def verdict_formula(relative: str, rounding: str, kinks: str) -> str:
    return (f'=IF({relative}<={AGREE!r},"{AGREES}",IF({rounding}>=1,"{BELOW_ROUNDING}",'
            f'IF({relative}<={rounding}+{AGREE!r},"{AGREES}",IF({kinks}>0,"{AT_A_KINK}","{DISAGREES}"))))')


def summary_formula(verdicts: str, n: int) -> str:
    """One line over the verdicts: every parameter agrees, or how many do not and why."""
    count = f'COUNTIF({verdicts},"{DISAGREES}")'
    return (f'=IF({count}>0,{count}&" of {n} disagree: backpropagation is wrong there",'
            f'IF(COUNTIF({verdicts},"{AGREES}")={n},"all {n} agree",'
            f'COUNTIF({verdicts},"{AGREES}")&" of {n} agree; the others are at a kink or below rounding"))')


def summary(verdicts: list[str]) -> str:
    n, wrong, right = len(verdicts), verdicts.count(DISAGREES), verdicts.count(AGREES)
    if wrong:
        return f"{wrong} of {n} disagree: backpropagation is wrong there"
    return f"all {n} agree" if right == n else f"{right} of {n} agree; the others are at a kink or below rounding"
