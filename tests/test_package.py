"""The package stands alone: a wheel holds every subpackage, the shipped data, the
documentation and the licence, and works outside the repository."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(out), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    (whl,) = out.glob("archspec-*.whl")
    return whl


def test_the_wheel_holds_every_package_the_data_the_docs_and_the_licence(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = {str(p.parent.relative_to(ROOT)) for p in (ROOT / "archspec").rglob("__init__.py")
                if "__pycache__" not in p.parts}
    missing = {p for p in packages if f"{p}/__init__.py" not in names}
    assert not missing, f"add {sorted(missing)} to [tool.setuptools] packages in pyproject.toml"
    for folder, pattern in (("archspec/templates", "*.yaml"), ("archspec/library", "*.yaml")):
        for f in (ROOT / folder).glob(pattern):
            assert f"{folder}/{f.name}" in names
    for page in (ROOT / "docs").glob("*.md"):
        assert f"archspec/docs/{page.name}" in names
    assert any(n.endswith(".dist-info/licenses/LICENSE") or n.endswith(".dist-info/LICENSE") for n in names)
    assert "archspec/py.typed" in names


def test_the_installed_wheel_reads_its_own_docs(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                        str(wheel)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import archspec; "
            "assert archspec.__file__.startswith(sys.argv[1]), archspec.__file__; "
            "from archspec.cli import main; sys.argv = ['archspec', 'docs', 'spec-format']; main()")
    r = subprocess.run([sys.executable, "-c", code, str(target)], cwd=tmp_path, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout == (ROOT / "docs" / "spec-format.md").read_text(encoding="utf-8")
