"""Every crm_common module's ``__all__`` lists exactly its public names, and each exists.

A module's public names are the names it binds at top level (functions, classes, constants,
type aliases; for a package, the names it re-exports) that do not start with ``_``. Two kinds
of binding are not API: the module's ``logger`` and ``TypeVar``s used in its generics.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path
from types import ModuleType
from typing import TypeVar

import pytest

import crm_common

MODULES = sorted(
    {"crm_common"}
    | {info.name for info in pkgutil.walk_packages(crm_common.__path__, "crm_common.")}
)


def load(name: str) -> ModuleType:
    return importlib.import_module(name)


def _internal(node: ast.ImportFrom) -> bool:
    """A re-export from crm_common itself (not ``typing``, ``__future__``...)."""
    return node.level > 0 or (node.module or "").split(".")[0] == "crm_common"


def _bound_names(body: list[ast.stmt], *, package: bool) -> set[str]:
    names: set[str] = set()
    for node in body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.ImportFrom) and package and _internal(node):
            names.update(alias.asname or alias.name for alias in node.names)
        elif isinstance(node, ast.If) and package and "TYPE_CHECKING" in ast.unparse(node.test):
            names |= _bound_names(node.body, package=package)  # lazily re-exported
    return names


def public_names(module: ModuleType) -> set[str]:
    assert module.__file__ is not None
    tree = ast.parse(Path(module.__file__).read_text())
    package = Path(module.__file__).name == "__init__.py"
    return {
        name
        for name in _bound_names(tree.body, package=package)
        if not name.startswith("_")
        and name != "logger"
        and not isinstance(getattr(module, name, None), TypeVar)
    }


class TestModules:
    def test_every_module_is_checked(self) -> None:
        assert {
            "crm_common.app",
            "crm_common.auth",
            "crm_common.broker",
            "crm_common.db",
            "crm_common.embedded",
            "crm_common.errors",
            "crm_common.events",
            "crm_common.events.envelope",
            "crm_common.health",
            "crm_common.http",
            "crm_common.logs",
            "crm_common.metrics",
            "crm_common.repository",
            "crm_common.settings",
            "crm_common.testing",
            "crm_common.testing.plugin",
        } <= set(MODULES)


class TestAll:
    @pytest.mark.parametrize("name", MODULES)
    def test_declared(self, name: str) -> None:
        module = load(name)
        assert isinstance(getattr(module, "__all__", None), list), f"{name} has no __all__ list"

    @pytest.mark.parametrize("name", MODULES)
    def test_lists_exactly_the_public_names(self, name: str) -> None:
        module = load(name)
        exported = list(getattr(module, "__all__", []))
        assert len(exported) == len(set(exported)), f"{name}.__all__ has duplicates"
        public = public_names(module)
        assert sorted(public - set(exported)) == [], f"public but not in {name}.__all__"
        assert sorted(set(exported) - public) == [], f"in {name}.__all__ but not public"

    @pytest.mark.parametrize("name", MODULES)
    def test_every_name_exists(self, name: str) -> None:
        module = load(name)
        missing = [n for n in getattr(module, "__all__", []) if not hasattr(module, n)]
        assert missing == []

    @pytest.mark.parametrize("name", MODULES)
    def test_star_import(self, name: str) -> None:
        namespace: dict[str, object] = {}
        exec(f"from {name} import *", namespace)
        namespace.pop("__builtins__")
        assert set(namespace) == set(load(name).__all__)


class TestLazyTestingExports:
    def test_unknown_name(self) -> None:
        import crm_common.testing

        with pytest.raises(AttributeError, match="has no attribute 'nope'"):
            crm_common.testing.nope  # noqa: B018

    def test_resolves_to_the_runtime_helpers(self) -> None:
        import crm_common.testing
        from crm_common.testing import runtime

        for name in crm_common.testing.__all__:
            assert getattr(crm_common.testing, name) is getattr(runtime, name)
