"""Recalculate a workbook headless in LibreOffice, forcing every formula to be computed again.

LibreOffice keeps the cached values of an .xlsx it did not write unless told otherwise; the
profile made here sets ``OOXMLRecalcMode`` to "always recalculate" on load.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

_PROFILE_XCU = """<?xml version="1.0" encoding="UTF-8"?>
<oor:items xmlns:oor="http://openoffice.org/2001/registry" xmlns:xs="http://www.w3.org/2001/XMLSchema"
 xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="OOXMLRecalcMode" oor:op="fuse"><value>0</value></prop></item>
<item oor:path="/org.openoffice.Office.Calc/Formula/Load"><prop oor:name="ODFRecalcMode" oor:op="fuse"><value>0</value></prop></item>
</oor:items>
"""


class RecalcError(RuntimeError):
    """LibreOffice is missing or could not recalculate the file."""


def find_soffice() -> str | None:
    """The LibreOffice executable, or None when it is not installed."""
    for name in ("soffice", "libreoffice"):
        found = shutil.which(name)
        if found:
            return found
    default = Path("/usr/lib/libreoffice/program/soffice")
    return str(default) if default.exists() else None


def _profile_dir() -> Path:
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "sheetprop" / "lo-profile"
    xcu = base / "user" / "registrymodifications.xcu"
    if not xcu.exists():
        xcu.parent.mkdir(parents=True, exist_ok=True)
        xcu.write_text(_PROFILE_XCU, encoding="utf-8")
    return base


def recalculate(src: str | os.PathLike, out_dir: str | os.PathLike, timeout: float = 600) -> Path:
    """Open ``src`` in LibreOffice, recalculate everything, and save the result as .xlsx in ``out_dir``."""
    soffice = find_soffice()
    if soffice is None:
        raise RecalcError("LibreOffice is not installed (Debian: apt-get install libreoffice-calc-nogui)")
    src, out_dir = Path(src).resolve(), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if out_dir.resolve() == src.parent:
        raise RecalcError("the output folder must differ from the source file's folder")
    cmd = [
        soffice,
        f"-env:UserInstallation={_profile_dir().as_uri()}",
        "--headless", "--norestore", "--nolockcheck",
        "--convert-to", "xlsx:Calc MS Excel 2007 XML",
        "--outdir", str(out_dir), str(src),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RecalcError(f"LibreOffice did not finish within {timeout:.0f} s") from None
    result = out_dir / (src.stem + ".xlsx")
    if proc.returncode != 0 or not result.exists():
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        raise RecalcError(f"LibreOffice could not convert {src.name}: {detail[-1] if detail else 'no output'}")
    return result


def recalculated_copy(src: str | os.PathLike) -> tuple[Path, tempfile.TemporaryDirectory]:
    """Recalculate into a fresh temporary folder; keep the returned folder object alive while reading."""
    tmp = tempfile.TemporaryDirectory(prefix="sheetprop-recalc-")
    return recalculate(src, tmp.name), tmp
