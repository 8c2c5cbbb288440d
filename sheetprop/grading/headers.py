"""What a student's header means: the many spellings of one quantity of the 2-2-2 network, read as keys.

A key names a quantity the way the grader tracks it: ``w5`` (a weight), ``w5+`` (a weight after this row's
update, when a row holds both), ``h1``/``a_h1``/``o2``/``a_o2`` (weighted sums and activations), ``E1``,
``E_total``, ``δ_o1``, ``∂E/∂w5``, the chain rule's factors ``∂E/∂a_o1``, ``∂a_o1/∂o1``, ``∂E/∂a_h1``,
``∂E_o1/∂a_h1``, and the inputs ``i1``, ``t1``, ``b1`` (the hidden layer's bias), ``η`` and ``iteration``.
A header may stand for several keys (``h1``: the weighted sum or the activation, which the values decide).
"""

from __future__ import annotations

import re
import unicodedata

_SUB = str.maketrans("₀₁₂₃₄₅₆₇₈⁰¹²³⁴⁵⁶⁷⁸", "012345678012345678")
_GREEK = {"∂": "d", "δ": "delta", "Δ": "delta", "σ": "sigma", "η": "eta", "α": "alpha", "−": "-", "–": "-",
          "·": "*", "×": "*", "’": "'", "′": "'"}


def canonical(text: str) -> str:
    """Lower case, Greek spelt out, subscripts as digits, without spaces, underscores and brackets."""
    text = unicodedata.normalize("NFKC", str(text)).translate(_SUB)
    for greek, latin in _GREEK.items():
        text = text.replace(greek, latin)
    return re.sub(r"[\s_()\[\]{}:=,.;]", "", text.lower())


UNIT = r"(h|o)([12])"
_RULES: list[tuple[str, str | tuple[str, ...]]] = [
    # the weights, before and after this row's update
    (r"(?:w|weight)([1-8])", "w{0}"),
    (r"(?:new|updated|next)w([1-8])|w([1-8])(?:new|next|updated|\+|'|\*|t\+1|n\+1|k\+1)", "w{0}+"),
    (r"b([12])|bias([12])", "b{0}"),
    (r"b(h|o)([12])|bias(h|o)([12])", "b_{0}{1}"),  # a bias per unit, trained
    (r"(?:d|delta)(?:e|etotal|etot|et|error|loss)/?(?:d|delta)b(h|o)([12])|db(h|o)([12])", "∂E/∂b_{0}{1}"),
    # gradients ∂E/∂w
    (r"(?:d|delta)(?:e|etotal|etot|et|error|loss)/?(?:d|delta)w([1-8])|dw([1-8])|gradw([1-8])|gradientw([1-8])|"
     r"gw([1-8])|de/dw([1-8])",
     "∂E/∂w{0}"),
    # the forward pass
    (r"(?:net|netinput|z|in|sum)(h|o)([12])|(h|o)([12])(?:net|in|input|netinput|z)", "{0}{1}"),
    (r"(?:out|a|sigma|sigmoid|sig|output|act|activation|s)(h|o)([12])(?:sigmoid|sigma|act|activation)?|"
     r"(h|o)([12])(?:out|a|sigma|output|activation)|sigma(?:net)?(h|o)([12])", "a_{0}{1}"),
    (r"(?:predicted|pred|prediction|yhat)o?([12])", "a_o{0}"),
    (UNIT, ("{0}{1}", "a_{0}{1}")),
    (r"yhat([12])|ypred([12])|prediction([12])|y\^([12])", "a_o{0}"),
    # the loss
    (r"(?:e|error|err|loss|l)(?:o)?([12])|e(?:total)?o([12])", "E{0}"),
    (r"e|etotal|etot|et|total|totalerror|toterror|errortotal|etotalerror|loss|error|totalloss|sse|mse|cost|"
     r"sumerror|j", "E_total"),
    # the backward pass: δ = ∂E/∂z, and the chain rule's factors
    (r"delta(?:e)?(h|o)([12])|d(?:e|etotal|etot)?/d(?:net|z|in)?(h|o)([12])|(?:delta|d)(?:net|z)(h|o)([12])",
     "δ_{0}{1}"),
    (r"d(?:e|etotal|etot)/d(?:out|a|sigma)(h|o)([12])", "∂E/∂a_{0}{1}"),
    (r"d(?:e|error)(?:o)?([12])/d(?:out|a)h([12])", "∂E{0}/∂a_h{1}"),
    (r"d(?:out|a)(h|o)([12])/d(?:net|z|in)?(?:h|o)[12]", "∂a_{0}{1}/∂{0}{1}"),
    (r"(?:i|x|input|in)([12])", "i{0}"),
    (r"(?:t|target|y|ytrue|expected|desired)o?([12])", "t{0}"),
    (r"eta|learningrate|lr|alpha|rate|stepsize|eta\d*\.?\d*", "η"),
    (r"iteration|iter|it|epoch|step|n|k|#|no|nr|number|i|t|round", "iteration"),
]
_COMPILED = [(re.compile(pattern), keys) for pattern, keys in _RULES]


def keys(header: object) -> tuple[str, ...]:
    """The keys a header may stand for (none: not a quantity of the network)."""
    if header is None or isinstance(header, (int, float)):
        return ()
    text = canonical(header)
    if not text:
        return ()
    for pattern, made in _COMPILED:
        match = pattern.fullmatch(text)
        if match:
            groups = [g for g in match.groups() if g is not None]
            return tuple(m.format(*groups) for m in ((made,) if isinstance(made, str) else made))
    return ()


def label_key(text: object) -> str | None:
    """The key of a label cell beside a fixed value (``i1``, ``t2``, ``η``, ``b1``): a header of one meaning,
    read also from labels written as "i1 =", "learning rate η", "target t2"."""
    found = keys(text)
    if len(found) == 1 and found[0][0] in "itbη" and not found[0].startswith("iteration"):
        return found[0]
    words = re.findall(r"[^\s=:]+", str(text or ""))
    for word in reversed(words):  # "learning rate η", "target t1"
        found = keys(word)
        if len(found) == 1 and found[0][0] in "itbη" and found[0] != "iteration":
            return found[0]
    return None
