import os
import shutil
from pathlib import Path

import pytest

from sheetprop import template
from sheetprop.recalc import find_soffice
from sheetprop.workbook import build

CLASSIC_LRS = [0.1, 0.2, 0.5, 0.8, 1.0, 2.0]


@pytest.fixture(scope="session")
def classic():
    return template.load("classic")


@pytest.fixture(scope="session")
def classic_book(tmp_path_factory, classic) -> Path:
    """The default workbook, built once for the session (do not modify it in a test)."""
    path = tmp_path_factory.mktemp("book") / "backprop.xlsx"
    build(classic, CLASSIC_LRS, 100, path)
    return path


@pytest.fixture(scope="session")
def soffice():
    """LibreOffice; its absence skips a test locally but fails it in CI, where it must be installed."""
    found = find_soffice()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("LibreOffice (soffice) is required in CI")
        pytest.skip("LibreOffice is not installed")
    return found


@pytest.fixture(scope="session")
def ssconvert():
    """Gnumeric's ssconvert; like LibreOffice, its absence skips a test locally and fails it in CI."""
    found = shutil.which("ssconvert")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("Gnumeric (ssconvert) is required in CI")
        pytest.skip("Gnumeric is not installed")
    return found


@pytest.fixture(scope="session")
def formulas_engine():
    """The `formulas` package (Excel's function semantics in Python, a test extra); like LibreOffice and
    Gnumeric, its absence skips a test locally and fails it in CI."""
    try:
        import formulas
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("the formulas package is required in CI (pip install -c constraints.txt -e '.[test]')")
        pytest.skip("the formulas package is not installed")
    return formulas
