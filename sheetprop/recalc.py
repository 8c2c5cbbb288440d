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
    return recalculate_all([src], out_dir, timeout)[0]


def recalculate_all(sources: list[str | os.PathLike], out_dir: str | os.PathLike, timeout: float = 600) -> list[Path]:
    """:func:`recalculate` for several files (of different names) in one start of LibreOffice."""
    soffice = find_soffice()
    if soffice is None:
        raise RecalcError("LibreOffice is not installed (Debian: apt-get install libreoffice-calc-nogui)")
    sources, out_dir = [Path(src).resolve() for src in sources], Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if any(out_dir.resolve() == src.parent for src in sources):
        raise RecalcError("the output folder must differ from the source file's folder")
    if len({src.stem for src in sources}) != len(sources):
        raise RecalcError("files recalculated together need different names")
    cmd = [
        soffice,
        f"-env:UserInstallation={_profile_dir().as_uri()}",
        "--headless", "--norestore", "--nolockcheck",
        "--convert-to", "xlsx:Calc MS Excel 2007 XML",
        "--outdir", str(out_dir), *map(str, sources),
    ]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RecalcError(f"LibreOffice did not finish within {timeout:.0f} s") from None
    results = [out_dir / (src.stem + ".xlsx") for src in sources]
    missing = [src for src, result in zip(sources, results) if not result.exists()]
    if proc.returncode != 0 or missing:
        detail = (proc.stderr or proc.stdout).strip().splitlines()
        what = missing[0].name if missing else sources[0].name
        raise RecalcError(f"LibreOffice could not convert {what}: {detail[-1] if detail else 'no output'}")
    return results


def recalculated_copy(src: str | os.PathLike) -> tuple[Path, tempfile.TemporaryDirectory]:
    """Recalculate into a fresh temporary folder; keep the returned folder object alive while reading."""
    tmp = tempfile.TemporaryDirectory(prefix="sheetprop-recalc-")
    return recalculate(src, tmp.name), tmp
