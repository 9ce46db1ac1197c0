"""The packages' shape: no import cycle, layers that point one way, private names kept at home.

Read from the sources (tests/support/imports.py), so a function-level import
counts as much as one at the top; only ``if TYPE_CHECKING:`` imports cannot
make a cycle, though they must still respect the layers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.imports import Import, cycles, imports, modules, package_of

ROOT = Path(__file__).resolve().parent.parent

#: swarmctl from the top down. A module may import its own layer and those below it, never one above.
#: A part names a module and everything below it; ``swarmctl`` itself (its ``__init__``) only itself.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("swarmctl.__main__",),
    ("swarmctl.cli", "swarmctl.cli_coercion"),
    # The commands, each wiring its parts together, and the settings only they read.
    ("swarmctl.manage", "swarmctl.join", "swarmctl.tokenserver", "swarmctl.listen", "swarmctl.tls", "swarmctl.certs"),
    ("swarmctl.api",),
    # Placing containers, and moving them off failed nodes (the rescheduler).
    ("swarmctl.scheduler",),
    ("swarmctl.cluster",),
    # What the cluster stands on: transport to engines and peers, the node list, the election.
    ("swarmctl.net", "swarmctl.discovery", "swarmctl.replication"),
    # The ground every layer may use.
    (
        "swarmctl",
        "swarmctl.errors",
        "swarmctl.durations",
        "swarmctl.heap",
        "swarmctl.jsontext",
        "swarmctl.counters",
        "swarmctl.logformat",
    ),
)


def layer_of(module: str, layers: tuple[tuple[str, ...], ...] = LAYERS) -> int | None:
    """The index of the layer whose longest part holds ``module``; None if no part does."""
    best: tuple[int, int] | None = None
    for number, parts in enumerate(layers):
        for part in parts:
            holds = module == part or (module.startswith(part + ".") and part.count(".") > 0)
            if holds and (best is None or len(part) > best[0]):
                best = (len(part), number)
    return None if best is None else best[1]


def upward(found: list[Import], layers: tuple[tuple[str, ...], ...] = LAYERS) -> list[str]:
    """Every import that points to a higher layer, as ``source:line -> target (name)``."""
    wrong = []
    for edge in found:
        source, target = layer_of(edge.source, layers), layer_of(edge.target, layers)
        if source is not None and target is not None and target < source:
            wrong.append(f"{edge.source}:{edge.line} -> {edge.target} ({edge.name})")
    return wrong


def private_names_taken(root: Path, packages: list[str]) -> list[str]:
    """Every ``from M import _name`` of a module M outside the importer's own package (a subpackage is another)."""
    known = modules(root, packages)
    wrong = []
    for edge in imports(root, packages):
        if not edge.name.startswith("_") or edge.name.startswith("__"):
            continue
        home = package_of(edge.source, known[edge.source])
        there = package_of(edge.target, known[edge.target])
        if there != home:
            wrong.append(f"{edge.source}:{edge.line} takes {edge.name} from {edge.target}")
    return wrong


# -- the packages as they are --------------------------------------------------------------


@pytest.mark.parametrize("package", ["kvstore", "swarmctl"])
def test_no_import_cycle(package: str) -> None:
    assert cycles(imports(ROOT, [package])) == []


def test_swarmctl_layers_point_one_way() -> None:
    assert upward(imports(ROOT, ["swarmctl"])) == []


def test_every_swarmctl_module_has_a_layer() -> None:
    """A new module is placed on purpose, not let through because no layer names it."""
    assert [m for m in modules(ROOT, ["swarmctl"]) if layer_of(m) is None] == []


def test_no_private_name_is_taken_from_another_package() -> None:
    assert private_names_taken(ROOT, ["kvstore", "swarmctl"]) == []


# -- the checks can fail -----------------------------------------------------------------------


def _package(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_a_function_level_cycle_is_found_and_a_typing_one_is_not(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/low.py": "def late():\n    from .high import x\n",
            "pkg/high.py": "from . import low\nx = 1\n",
            "pkg/typed.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .user import U\n",
            "pkg/user.py": "from .typed import T\n",
        },
    )
    assert cycles(imports(root, ["pkg"])) == [["pkg.high", "pkg.low"]]


def test_a_cycle_through_a_package_init_is_found(tmp_path: Path) -> None:
    """Importing ``pkg.sub.mod`` runs ``pkg/sub/__init__.py``: a loop through it is a loop."""
    root = _package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/sub/__init__.py": "from ..top import y\n",
            "pkg/sub/mod.py": "x = 1\n",
            "pkg/top.py": "from .sub.mod import x\ny = 2\n",
        },
    )
    assert cycles(imports(root, ["pkg"])) == [["pkg.sub", "pkg.top"]]


def test_an_import_up_the_layers_is_refused_typing_only_too(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/top.py": "from .bottom import b\n",
            "pkg/bottom.py": "from typing import TYPE_CHECKING\nb = 1\nif TYPE_CHECKING:\n    from .top import T\n",
        },
    )
    layers = (("pkg.top",), ("pkg.bottom",))
    assert upward(imports(root, ["pkg"]), layers) == ["pkg.bottom:4 -> pkg.top (T)"]


def test_a_private_name_from_another_package_is_refused(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a/__init__.py": "",
            "pkg/a/one.py": "_hidden = 1\n_near = 2\n",
            "pkg/a/two.py": "from .one import _near\n",
            "pkg/b.py": "from .a.one import _hidden\n",
        },
    )
    assert private_names_taken(root, ["pkg"]) == ["pkg.b:1 takes _hidden from pkg.a.one"]


def test_the_layers_name_swarmctl_itself_apart_from_its_modules() -> None:
    assert layer_of("swarmctl") == len(LAYERS) - 1
    assert layer_of("swarmctl.api.app") == 3
    assert layer_of("swarmctl.somewhere_new") is None
