"""A regular install: build the wheel, install it into a fresh virtualenv, use it from outside the repository."""

import shutil
import site
import subprocess
import sys
import sysconfig
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
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                             str(tmp / "dist"), str(tmp / "src")], capture_output=True, text=True)
    assert result.returncode == 0, f"pip wheel failed:\n{result.stdout}{result.stderr}"
    return next((tmp / "dist").glob("sheetprop-*.whl"))


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh virtualenv holding the wheel, installed offline. The dependencies come from the environment
    running the tests (a virtualenv or the system's Python): its package folders are added after the new
    virtualenv's own, so the wheel's sheetprop and trainer come first and the checkout is never seen."""
    env = tmp_path_factory.mktemp("venv") / "env"
    venv.create(env)  # without pip of its own (a Python without ensurepip has none to give): ours serves it
    python = env / "bin" / "python"
    pip = [sys.executable, "-m", "pip", "--python", str(python)]
    own = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True).stdout.strip()
    running = dict.fromkeys(site.getsitepackages() + [sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (Path(own) / "running-environment.pth").write_text("\n".join(p for p in running if Path(p).is_dir()) + "\n")
    # --force-reinstall: the running environment may hold this very version (an editable install)
    result = subprocess.run([*pip, "install", "--no-index", "--no-deps", "--force-reinstall", str(wheel)],
                            capture_output=True, text=True)
    assert result.returncode == 0, f"pip install of the wheel failed:\n{result.stdout}{result.stderr}"
    check = subprocess.run([*pip, "check"], capture_output=True, text=True)
    unmet = [line for line in check.stdout.splitlines() if line.startswith("sheetprop ")]
    assert not unmet, "the wheel's dependencies are not met:\n" + "\n".join(unmet)
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
    graded = run(installed, tmp_path, "sheetprop", "grade", "default.xlsx")  # the grading subpackage is installed
    assert graded.splitlines()[-1] == "1 file: 1 correct", graded
    config = run(installed, tmp_path, "python", "-c", "from trainer.config import read; print(read('mnist').model)")
    assert config.strip() == "wide"
