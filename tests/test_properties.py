"""Properties of random networks (hypothesis): 1-6 layers of 1-12 units, every activation and loss,
biases on and off, 1-4 samples. The reference must agree with torch autograd, every workbook must stay
within Excel's limits (checked with openpyxl's own formula tokenizer), and LibreOffice and Gnumeric must
recompute what the workbook caches, for every optimizer."""

import dataclasses
import re

import numpy as np
import openpyxl
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from openpyxl.formula.tokenizer import Token, Tokenizer

from sheetprop import limits, recalc, reference
from sheetprop.layout import TrainingLayout
from sheetprop.update import OPTIMIZERS
from sheetprop.workbook import build
from tests.networks import networks
from tests.torch_oracle import torch_gradients
from tests.xlsx import assert_gnumeric_matches_cache, assert_recalculation_matches_cache


def examples(n: int, shrink: bool = True) -> settings:
    """n examples, the same on every run (CI must be deterministic), without a time limit per example."""
    phases = [Phase.explicit, Phase.generate] + ([Phase.shrink] if shrink else [])
    return settings(max_examples=n, deadline=None, derandomize=True, phases=phases,
                    suppress_health_check=[HealthCheck.too_slow])


@examples(200)
@given(networks(), st.sampled_from([1.0, 0.4, 2.5]))
def test_reference_equals_torch_autograd(net, edit):
    net = dataclasses.replace(net, targets=net.targets * edit)  # as a student may edit them: any sum
    trace = reference.train(net, [0.1], 3)
    for it in range(4):
        loss, grads = torch_gradients(net, trace.params[0, it])
        scale = max(1.0, np.abs(grads).max(), abs(loss))
        assert abs(trace.total[0, it] - loss) <= 1e-11 * scale
        np.testing.assert_allclose(trace.grads[0, it], grads, rtol=1e-9, atol=1e-11 * scale)


def tokenizer_shape(formula: str) -> tuple[int, int, int]:
    """(length, deepest function nesting, most arguments of one call) by openpyxl's tokenizer."""
    depth = deepest = most = 0
    args: list[int] = []
    for token in Tokenizer(formula).items:
        if token.type == Token.FUNC and token.subtype == Token.OPEN:
            depth += 1
            deepest = max(deepest, depth)
            args.append(1)
        elif token.type == Token.FUNC and token.subtype == Token.CLOSE:
            depth -= 1
            most = max(most, args.pop())
        elif token.type == Token.SEP and token.subtype == Token.ARG and args:
            args[-1] += 1
    return len(formula) - 1, deepest, most


@examples(15)
@given(networks())
def test_every_formula_of_a_random_network_fits_excel(tmp_path_factory, net):
    out = tmp_path_factory.mktemp("prop") / "net.xlsx"
    build(net, [0.1, 0.5], 3, out)
    wb = openpyxl.load_workbook(out)
    formulas = [getattr(c.value, "text", c.value)  # array formulas keep theirs in .text
                for ws in wb.worksheets for row in ws.iter_rows() for c in row if c.data_type == "f"]
    layout = TrainingLayout(net, 3)
    assert len(formulas) >= 2 * 4 * len(layout.columns)
    # formulas that differ only in their numbers (a column filled down) share nesting and arguments:
    # the longest of each shape stands for all of them
    shapes: dict[str, str] = {}
    for f in formulas:
        key = re.sub(r"\d+(\.\d+)?", "0", f)
        if len(f) > len(shapes.get(key, "")):
            shapes[key] = f
    for f in shapes.values():
        length, deepest, most = tokenizer_shape(f)
        assert length <= limits.MAX_FORMULA_CHARS and deepest <= limits.MAX_NESTING
        assert most <= limits.MAX_ARGUMENTS
        assert limits.formula_shape(f)[:2] == (deepest, most), f  # the writer's own scan agrees
    assert max(ws.max_column for ws in wb.worksheets) <= limits.MAX_COLUMNS


@pytest.mark.libreoffice
@examples(1, shrink=False)  # one example: ten networks, recalculated by one start of LibreOffice
@given(st.lists(networks(), min_size=10, max_size=10))
def test_libreoffice_and_gnumeric_recompute_every_cached_value_of_random_networks(soffice, ssconvert,
                                                                                 tmp_path_factory, nets):
    folder = tmp_path_factory.mktemp("prop-lo")
    books = [folder / f"net{i}.xlsx" for i in range(len(nets))]
    optimizers = list(OPTIMIZERS)
    nets = [dataclasses.replace(net, optimizers=(optimizers[i % len(optimizers)],)) for i, net in enumerate(nets)]
    for net, book in zip(nets, books):
        build(net, [0.1, 0.5], 3, book)
    for net, book, fresh in zip(nets, books, recalc.recalculate_all(books, folder / "recalc")):
        checked = assert_recalculation_matches_cache(book, fresh, floor=1e-9)
        assert checked >= 2 * 4 * len(TrainingLayout(net, 3, optimizer=net.optimizers[0]).columns)
        assert assert_gnumeric_matches_cache(book, ssconvert, folder / f"gnumeric-{book.stem}", floor=1e-9) == checked
