"""How a network's units and parameters are named: classic (w1, h1, a_h1) or layered (w[1]_11, z[1]_1)."""

from __future__ import annotations

import re
from functools import cached_property
from sheetprop.views import NetworkView, ParamView

NAMINGS = ("layered", "classic")
_SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")

MAX_DEFINED_NAME = 255  # characters (UTF-16 units) in an Excel defined name
# Cell references Excel (and xlsxwriter) will not take as a name: A1 .. XFD1048576 (any 1-3 letters and a
# row, as xlsxwriter reads them), and R1C1 forms: R, C, RC, R2, C3, R2C3.
_CELL_LIKE = re.compile(r"[A-Za-z]{1,3}\d+|[Rr]\d*[Cc]\d*|[RrCc]\d*")


def defined_name_problem(name: str) -> str | None:
    """Why Excel would refuse ``name`` as a defined name, or None when it takes it."""
    length = len(name.encode("utf-16-le", "surrogatepass")) // 2
    if length > MAX_DEFINED_NAME:
        return f"it has {length:,} characters; Excel allows {MAX_DEFINED_NAME}"
    if not re.fullmatch(r"[^\W\d]|\\", name[:1]):
        return "it must start with a letter, an underscore or a backslash"
    if not re.fullmatch(r"[\w.\\]*", name):
        return "it may hold only letters, digits, underscores, periods and backslashes"
    if _CELL_LIKE.fullmatch(name):
        return "it reads as a cell reference"
    return None


def sample_mark(s: int) -> str:
    """The superscript that marks sample s (0-based): ⁽¹⁾, ⁽²⁾, …"""
    return f"⁽{str(s + 1).translate(_SUPERSCRIPT)}⁾"


class Names:
    """The names of one network's units, parameters and per-layer helpers."""

    def __init__(self, net: NetworkView) -> None:
        self.net = net
        self.classic = net.naming == "classic"
        # Indices run together (w[1]_12) unless a layer has 10 units or more (w[1]_1,12).
        self._wide = max(net.size(l) for l in range(net.depth + 1)) >= 10

    def index(self, *indices: int) -> str:
        return ("," if self._wide else "").join(str(i + 1) for i in indices)

    def sample(self, text: str, s: int) -> str:
        """``text`` marked with its sample when there are several."""
        return text if self.net.samples == 1 else text + sample_mark(s)

    def layer(self, l: int) -> str:
        """A layer's short name: its template name (classic) or [l] (layered)."""
        return self.net.layer(l).name if self.classic else f"[{l}]"

    def unit(self, l: int, j: int) -> str:
        """The name of a unit's weighted sum: h1 (classic) or z[1]_1 (layered); inputs by their names."""
        if l == 0:
            return self.net.input_names[j]
        if self.classic:
            name = self.net.layer(l).name
            return f"{name}_{j + 1}" if name[-1].isdigit() else f"{name}{j + 1}"
        return f"z[{l}]_{self.index(j)}"

    def activation(self, l: int, j: int) -> str:
        return f"a_{self.unit(l, j)}" if self.classic else f"a[{l}]_{self.index(j)}"

    def delta(self, l: int, j: int) -> str:
        return f"δ_{self.unit(l, j)}" if self.classic else f"δ[{l}]_{self.index(j)}"

    def param(self, p: ParamView) -> str:
        return self._params[p]

    @cached_property
    def _params(self) -> dict[ParamView, str]:
        params = self.net.params
        if self.classic:
            weights = [p for p in params if p.k is not None]
            names = {p: f"w{i}" for i, p in enumerate(weights, start=1)}
            names.update({p: f"b_{self.unit(p.l, p.j)}" for p in params if p.k is None})
            return names
        return {p: f"b[{p.l}]_{self.index(p.j)}" if p.k is None else f"w[{p.l}]_{self.index(p.j, p.k)}"
                for p in params}
