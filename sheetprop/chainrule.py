"""The chain rule written out for the Equations sheet: named steps, and the full expansion as text.

The expansion substitutes every δ by its own formula down to the loss, so its length grows
with the number of paths through the later layers; it is built once per δ (memoized) and given
up as soon as it passes the budget (Excel's 32,767 characters per cell).
"""

from __future__ import annotations

from sheetprop.formulas import TEXT
from sheetprop.limits import MAX_TEXT_CHARS
from sheetprop.network import Network
from sheetprop.quantities import A, Delta, Grad, Quantity, SampleGrad, SampleLoss, Z


class _TooLong(Exception):
    pass


class Expansion:
    """Fully expanded text of δs and gradients of one network, each within ``budget`` characters."""

    def __init__(self, net: Network, budget: int = MAX_TEXT_CHARS - 2) -> None:
        self.net, self.budget = net, budget
        self._deltas: dict[Delta, str | None] = {}

    def _ref(self, q: Quantity) -> str:
        if isinstance(q, Delta):
            text = self.delta(q)
            if text is None:
                raise _TooLong
            return text
        return q.label(self.net)

    def delta(self, q: Delta) -> str | None:
        """δ written out down to the loss, or None when that passes the budget."""
        if q not in self._deltas:
            try:
                text = q.formula(self.net, self._ref, TEXT)
            except _TooLong:
                text = None
            self._deltas[q] = text if text is not None and len(text) <= self.budget else None
        return self._deltas[q]

    def gradient(self, q: Grad | SampleGrad) -> str | None:
        """One sample's ∂E/∂p written out in full, or None when that passes the budget."""
        s = q.s if isinstance(q, SampleGrad) else 0
        try:
            text = SampleGrad(q.param, s).formula(self.net, self._ref, TEXT)
        except _TooLong:
            return None
        return text if len(text) <= self.budget else None


    def written_out(self, q: Grad | SampleGrad) -> str:
        """∂E/∂p expanded down to the loss, or its one-step formula with a note where that passes the budget."""
        full = self.gradient(q)
        if full is not None:
            return full
        s = q.s if isinstance(q, SampleGrad) else 0
        delta = Delta(q.param.l, q.param.j, s).label(self.net)
        return (f"{q.formula(self.net, self.net.label, TEXT)}   (written out in full this passes Excel's "
                f"{MAX_TEXT_CHARS:,} characters per cell; {delta} is in the backward pass above)")

    def steps(self, q: Grad | SampleGrad) -> str:
        return steps(self.net, q)


def steps(net: Network, q: Grad | SampleGrad) -> str:
    """The chain rule for ∂E/∂p, named step by step (∂E_total/∂a_h1 · ∂a_h1/∂h1 · ∂h1/∂w1)."""
    p = q.param
    s = q.s if isinstance(q, SampleGrad) else 0
    zname, aname = Z(p.l, p.j, s).label(net), A(p.l, p.j, s).label(net)
    loss = "E_total" if isinstance(q, Grad) else SampleLoss(s).label(net)
    if net.depth == p.l and net.loss_fn.combined:
        named = [f"∂{loss}/∂{zname}", f"∂{zname}/∂{p.label(net)}"]
    else:
        named = [f"∂{loss}/∂{aname}", f"∂{aname}/∂{zname}", f"∂{zname}/∂{p.label(net)}"]
    return " · ".join(named)
