"""The two distributions, built from the working tree and installed into fresh virtualenvs.

``kvstore`` (kvstore/pyproject.toml) must carry the kvstore package alone: no
``swarmctl`` command, no typer or aiohttp, the backends' entry points, and
``py.typed`` so that a user's own mypy checks their calls. ``swarmctl`` (the
root pyproject.toml) carries the swarmctl package and command and depends on
kvstore with every store client.

Offline: the wheels are built with the dev venv's setuptools (no build
isolation) from a copy of the tree, so the checkout gets no ``build/``, and are
installed with ``--no-index --no-deps`` into venvs made without pip; what a
distribution depends on is read from its metadata.
"""

from __future__ import annotations

import email
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import kvstore

ROOT = Path(__file__).resolve().parent.parent
#: What the wheels are built from: the packages and the root's packaging files.
SOURCES = ("kvstore", "swarmctl", "pyproject.toml", "README.md", "MANIFEST.in")
BACKENDS = {"memory", "sqlite", "etcd", "consul", "zk"}


@dataclass(frozen=True)
class Wheels:
    kvstore: Path
    swarmctl: Path


def run(*argv: str | Path, cwd: Path | None = None, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [str(a) for a in argv], capture_output=True, text=True, cwd=cwd, timeout=timeout, check=False
    )
    assert result.returncode == 0, f"{argv}: {result.stdout}\n{result.stderr}"
    return result


def build_wheel(project: Path, out: Path) -> Path:
    """``python -m build`` as a user runs it (sdist, then the wheel from the sdist), without network."""
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, project)
    (wheel,) = out.glob("*.whl")
    return wheel


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Wheels:
    source = tmp_path_factory.mktemp("source")
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist", "*.pyc")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=ignore)
        else:
            shutil.copy2(path, source / name)
    out = tmp_path_factory.mktemp("wheels")
    return Wheels(
        kvstore=build_wheel(source / "kvstore", out / "kvstore"),
        swarmctl=build_wheel(source, out / "swarmctl"),
    )


@dataclass(frozen=True)
class Venv:
    root: Path

    @property
    def python(self) -> Path:
        return self.root / "bin" / "python"

    def install(self, *wheels: Path) -> None:
        run(
            sys.executable,
            "-m",
            "pip",
            "--isolated",
            "--python",
            self.python,
            "install",
            "--quiet",
            "--no-index",
            "--no-deps",
            "--no-cache-dir",
            *wheels,
        )

    def python_says(self, code: str, cwd: Path) -> str:
        return run(self.python, "-c", code, cwd=cwd).stdout.strip()


def fresh_venv(path: Path) -> Venv:
    run(sys.executable, "-m", "venv", "--without-pip", path)
    return Venv(path)


def metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(archive.read(name))


def entry_points(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/entry_points.txt")]
        return archive.read(name).decode()


def files(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as archive:
        return {n for n in archive.namelist() if ".dist-info/" not in n}


def mypy_errors(venv: Venv, script: str, workdir: Path) -> str:
    """mypy --strict on a user's script, with only ``venv``'s installed packages to find imports in."""
    workdir.mkdir()
    (workdir / "user.py").write_text(script)
    result = subprocess.run(
        [
            str(Path(sys.executable).with_name("mypy")),
            "--strict",
            "--python-executable",
            str(venv.python),
            "--cache-dir",
            str(workdir / ".cache"),
            "user.py",
        ],
        capture_output=True,
        text=True,
        cwd=workdir,
        timeout=300,
        check=False,
    )
    assert result.returncode in (0, 1), result.stdout + result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def kvstore_venv(wheels: Wheels, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venv]:
    venv = fresh_venv(tmp_path_factory.mktemp("kvstore-venv") / "venv")
    venv.install(wheels.kvstore)
    yield venv


@pytest.fixture(scope="module")
def swarmctl_venv(wheels: Wheels, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Venv]:
    venv = fresh_venv(tmp_path_factory.mktemp("swarmctl-venv") / "venv")
    venv.install(wheels.kvstore, wheels.swarmctl)
    yield venv


def test_kvstore_wheel_holds_the_kvstore_package_alone(wheels: Wheels) -> None:
    contents = files(wheels.kvstore)
    assert all(name.startswith("kvstore/") for name in contents), sorted(contents)
    assert {"kvstore/__init__.py", "kvstore/py.typed", "kvstore/backends/etcd.py", "kvstore/testing.py"} <= contents
    assert {"kvstore/aio/__init__.py", "kvstore/aio/etcd.py", "kvstore/aio/testing.py"} <= contents
    assert "kvstore/pyproject.toml" not in contents
    meta = metadata(wheels.kvstore)
    assert meta["Name"] == "kvstore" and meta["Version"] == kvstore.__version__
    # every requirement belongs to an extra: a plain install needs nothing else
    requirements = meta.get_all("Requires-Dist") or []
    assert requirements and all("extra ==" in r for r in requirements), requirements
    assert set(meta.get_all("Provides-Extra") or []) == {"etcd", "consul", "zk"}
    points = entry_points(wheels.kvstore)
    assert "[kvstore.backends]" in points and "console_scripts" not in points
    assert {line.split("=")[0].strip() for line in points.splitlines() if "=" in line} == BACKENDS


def test_swarmctl_wheel_holds_swarmctl_and_depends_on_kvstore(wheels: Wheels) -> None:
    contents = files(wheels.swarmctl)
    assert all(name.startswith("swarmctl/") for name in contents), sorted(contents)
    assert {
        "swarmctl/__init__.py",
        "swarmctl/py.typed",
        "swarmctl/cli.py",
        "swarmctl/api/static/dashboard.html",
    } <= contents
    meta = metadata(wheels.swarmctl)
    assert meta["Name"] == "swarmctl" and meta["Version"] == kvstore.__version__
    requirements = {r.split(";")[0].replace(" ", "") for r in meta.get_all("Requires-Dist") or []}
    assert any(r.startswith("kvstore[consul,etcd,zk]") for r in requirements), requirements
    assert {"typer", "aiohttp", "cryptography"} <= {r.split(">")[0].split("[")[0] for r in requirements}
    assert "swarmctl = swarmctl.cli:main" in entry_points(wheels.swarmctl)


def test_kvstore_alone_imports_nothing_of_swarmctl(kvstore_venv: Venv, tmp_path: Path) -> None:
    assert not (kvstore_venv.root / "bin" / "swarmctl").exists()
    found = kvstore_venv.python_says(
        "import importlib.util as u; print(*(m for m in ('swarmctl', 'typer', 'aiohttp') if u.find_spec(m)))",
        tmp_path,
    )
    assert found == ""
    loaded = kvstore_venv.python_says(
        "import sys, kvstore\n"
        f"with kvstore.from_url('sqlite://{tmp_path}/kv.db') as s:\n"
        "    s.put('a/b', b'v')\n"
        "    assert s.get('a/b').value == b'v'\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'swarmctl', 'typer', 'aiohttp', 'click'}))\n"
        "print(kvstore.__file__)",
        tmp_path,
    )
    names, where = loaded.splitlines()
    assert names == "[]"
    assert str(kvstore_venv.root) in where, "kvstore came from the checkout, not the wheel"
    # the operator's command comes with kvstore alone
    listing = run(kvstore_venv.python, "-m", "kvstore", f"sqlite://{tmp_path}/kv.db", "ls", "a", cwd=tmp_path)
    assert listing.stdout == "a/b\tv\n"


def test_a_users_mypy_sees_kvstores_types(kvstore_venv: Venv, tmp_path: Path) -> None:
    good = "import kvstore\nvalue: bytes = kvstore.new_store('memory', []).get('k').value\n"
    assert mypy_errors(kvstore_venv, good, tmp_path / "good").startswith("Success")
    wrong = "import kvstore\nvalue: int = kvstore.new_store('memory', []).get('k').value\n"
    report = mypy_errors(kvstore_venv, wrong, tmp_path / "wrong")
    assert 'expression has type "bytes", variable has type "int"' in report, report


def test_swarmctl_brings_its_command_and_types(swarmctl_venv: Venv, tmp_path: Path) -> None:
    assert (swarmctl_venv.root / "bin" / "swarmctl").exists()
    version = swarmctl_venv.python_says("import swarmctl; print(swarmctl.__version__)", tmp_path)
    assert version == kvstore.__version__
    wrong = "from swarmctl.durations import parse_duration\nseconds: str = parse_duration('1s')\n"
    report = mypy_errors(swarmctl_venv, wrong, tmp_path / "wrong")
    assert 'expression has type "float", variable has type "str"' in report, report
