"""A regular install: build the wheel, install it into a fresh virtualenv, use it from outside the repository."""

import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from sheetprop import template

REPO = Path(__file__).resolve().parent.parent
SKIP = shutil.ignore_patterns(".git", "build", "dist", "outputs", "*.egg-info", "__pycache__", ".pytest_cache",
                              ".hypothesis")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The project's wheel, built from a clean copy of the sources (no stale build folder)."""
    tmp = tmp_path_factory.mktemp("wheel")
    shutil.copytree(REPO, tmp / "src", ignore=SKIP)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp / "dist"), str(tmp / "src")], check=True, capture_output=True)
    return next((tmp / "dist").glob("sheetprop-*.whl"))


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh virtualenv holding the wheel; its dependencies come from this machine's packages, offline
    (the virtualenv has no pip or setuptools of its own, so the machine's serve both)."""
    env = tmp_path_factory.mktemp("venv") / "env"
    venv.create(env, system_site_packages=True, with_pip=False)
    subprocess.run([env / "bin" / "python", "-m", "pip", "install", "-q", "--no-index", str(wheel)], check=True,
                   capture_output=True)
    return env / "bin"


def run(bin_dir: Path, cwd: Path, *args: str) -> str:
    result = subprocess.run([str(bin_dir / args[0]), *args[1:]], cwd=cwd, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def test_the_wheel_holds_every_template(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"sheetprop/templates/{name}.toml" for name in template.shipped()} <= names
    assert "trainer/templates/mnist.toml" in names


def test_the_installed_package_runs_from_outside_the_repository(installed, tmp_path):
    where = run(installed, tmp_path, "python", "-c", "import sheetprop, trainer; print(sheetprop.__file__, "
                                                     "trainer.__file__)")
    assert all(str(installed.parent) in path for path in where.split()), where  # not the checkout
    listed = run(installed, tmp_path, "sheetprop", "templates")
    assert [line.split()[0] for line in listed.splitlines()] == sorted(template.shipped())
    for name in template.shipped():
        out = tmp_path / f"{name}.xlsx"
        text = run(installed, tmp_path, "sheetprop", "build", "--template", name, "--iterations", "5", "--out", str(out))
        assert text.startswith(f"Wrote {out} ({name}:") and zipfile.is_zipfile(out)
    run(installed, tmp_path, "sheetprop", "build", "--lr", "0.5", "--iterations", "3", "--out", "default.xlsx")
    assert (tmp_path / "default.xlsx").is_file()
    config = run(installed, tmp_path, "python", "-c", "from trainer.config import read; print(read('mnist').model)")
    assert config.strip() == "tiny"
