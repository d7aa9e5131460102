"""Service boundaries, checked on the source (AST) of every service and of libs/common.

(a) No module under ``services/<svc>/`` imports another service's package ``crm_<other>``.
(b) Nothing under ``libs/common/`` imports a service package.
(c) No service's Python or migration code names another service's schema: not in SQL strings
    (``<other>.<identifier>``, ``search_path``), not as ``schema=``/``*_schema=`` arguments, not
    in ``make_metadata(...)``, not as a ``"schema"`` key (``__table_args__``). Module-level string
    constants (``SCHEMA = "profile"``) are resolved, since migrations pass ``schema=SCHEMA``.

Each check is also run on small bad examples, so a check that stopped finding anything fails.
``make lint`` runs this file.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: Calls whose string arguments are SQL or schema-qualified names, whatever they look like.
SQL_CALLS = frozenset(
    {
        "text",
        "execute",
        "exec_driver_sql",
        "executemany",
        "fetch",
        "fetchrow",
        "fetchval",
        "literal_column",
        "DDL",
        "ForeignKey",
        "ForeignKeyConstraint",
        "create_foreign_key",
        "Sequence",
    }
)
SQL_WORDS = re.compile(
    r"\b(select|insert|update|delete|from|join|into|table|references|schema|truncate|grant|"
    r"returning|where|search_path|sequence|index)\b",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Finding:
    """A reference to a package or schema at one place in the source."""

    path: str
    line: int
    name: str
    how: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.how} {self.name!r}"


def services_in(root: Path) -> list[str]:
    """Service names: ``services/<svc>`` directories holding a ``crm_<svc>`` package."""
    return sorted(p.name for p in (root / "services").iterdir() if (p / f"crm_{p.name}").is_dir())


def python_files(directory: Path) -> Iterator[Path]:
    """Every ``.py`` file under ``directory`` (caches left out)."""
    for path in sorted(directory.rglob("*.py")):
        if "__pycache__" not in path.parts and ".venv" not in path.parts:
            yield path


def _call_name(node: ast.Call) -> str:
    """``text`` for ``text(...)``, ``sa.text(...)`` and ``op.text(...)``."""
    func = node.func
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else ""


# --- imports -----------------------------------------------------------------------------------


def imported_packages(source: str, path: str = "<string>") -> list[Finding]:
    """Top-level packages imported by ``source`` (also via ``import_module("...")``)."""
    found: list[Finding] = []
    for node in ast.walk(ast.parse(source, path)):
        if isinstance(node, ast.Import):
            found += [
                Finding(path, node.lineno, a.name.split(".")[0], "imports") for a in node.names
            ]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append(Finding(path, node.lineno, node.module.split(".")[0], "imports"))
        elif (
            isinstance(node, ast.Call)
            and _call_name(node) in ("import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            found.append(Finding(path, node.lineno, node.args[0].value.split(".")[0], "imports"))
    return found


def import_violations(source: str, path: str, forbidden: set[str]) -> list[Finding]:
    """Imports of any package in ``forbidden``."""
    return [f for f in imported_packages(source, path) if f.name in forbidden]


# --- schema names --------------------------------------------------------------------------------


def _docstrings(tree: ast.AST) -> set[int]:
    """``id()`` of every docstring node (prose may mention other schemas)."""
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _constants(tree: ast.Module) -> dict[str, str]:
    """Module-level ``NAME = "string"`` assignments."""
    constants: dict[str, str] = {}
    for node in tree.body:
        targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
        value = getattr(node, "value", None)
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            for target in targets:
                if isinstance(target, ast.Name):
                    constants[target.id] = value.value
    return constants


def _string(node: ast.AST | None, constants: dict[str, str]) -> str | None:
    """The string a node stands for: a literal or a module-level constant's name."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        return constants.get(node.id)
    return None


def _sql_patterns(schemas: Sequence[str]) -> list[tuple[str, re.Pattern[str], str]]:
    """Per schema: ``schema.identifier`` (optionally quoted) and ``search_path ... schema``."""
    patterns = []
    for schema in schemas:
        qualified = re.compile(rf'(?<![\w.$"])"?{schema}"?\s*\.\s*"?[A-Za-z_]')
        search_path = re.compile(rf'search_path\b[^;]*?(?<![\w.])"?{schema}"?(?![\w.])', re.I)
        patterns += [(schema, qualified, "SQL names"), (schema, search_path, "search_path names")]
    return patterns


def schema_references(source: str, path: str, schemas: Sequence[str]) -> list[Finding]:
    """Every place ``source`` names one of ``schemas`` in SQL or metadata."""
    tree = ast.parse(source, path)
    constants, docstrings = _constants(tree), _docstrings(tree)
    sql_context: set[int] = set()
    found: list[Finding] = []

    def add(node: ast.AST, value: str | None, how: str) -> None:
        if value is not None and value in schemas:
            found.append(Finding(path, getattr(node, "lineno", 0), value, how))

    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _call_name(node)
            for keyword in node.keywords:
                if keyword.arg and (keyword.arg == "schema" or keyword.arg.endswith("_schema")):
                    add(keyword.value, _string(keyword.value, constants), f"{keyword.arg}=")
            if name == "make_metadata" and node.args:
                add(node, _string(node.args[0], constants), "make_metadata")
            if name in SQL_CALLS:
                for arg in [*node.args, *(k.value for k in node.keywords)]:
                    sql_context.update(id(n) for n in ast.walk(arg))
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if _string(key, {}) == "schema":
                    add(value, _string(value, constants), '"schema" key of')
    patterns = _sql_patterns(schemas)
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
            continue
        if id(node) in docstrings:
            continue
        if id(node) not in sql_context and not SQL_WORDS.search(node.value):
            continue
        for schema, pattern, how in patterns:
            if pattern.search(node.value):
                found.append(Finding(path, node.lineno, schema, how))
    return found


# --- the tree ------------------------------------------------------------------------------------


def tree_violations(root: Path) -> list[Finding]:
    """Every boundary violation under ``root`` (a checkout: ``services/`` and ``libs/common/``)."""
    services = services_in(root)
    packages = {f"crm_{s}" for s in services}
    violations: list[Finding] = []
    for service in services:
        for file in python_files(root / "services" / service):
            source, rel = file.read_text(), str(file.relative_to(root))
            violations += import_violations(source, rel, packages - {f"crm_{service}"})
            others = [s for s in services if s != service]
            violations += schema_references(source, rel, others)
    for file in python_files(root / "libs" / "common"):
        violations += import_violations(file.read_text(), str(file.relative_to(root)), packages)
    return violations


class TestRepository:
    def test_no_boundary_is_crossed(self):
        violations = tree_violations(ROOT)
        assert not violations, "\n".join(map(str, violations))

    def test_the_scan_sees_every_service(self):
        services = services_in(ROOT)
        assert services == ["loyalty", "notify", "profile", "recommend", "segment"]
        for service in services:
            files = list(python_files(ROOT / "services" / service))
            assert any("migrations" in f.parts for f in files), service
            imports = {
                f.name for file in files for f in imported_packages(file.read_text(), str(file))
            }
            assert {"crm_common", f"crm_{service}"} <= imports, service

    def test_the_scan_finds_each_service_naming_its_own_schema(self):
        """Own-schema references are found (and allowed), so the detector reads real code."""
        services = services_in(ROOT)
        for service in services:
            hows = {
                f.how
                for file in python_files(ROOT / "services" / service)
                for f in schema_references(file.read_text(), str(file), services)
                if f.name == service
            }
            assert {"make_metadata", "schema="} <= hows, service

    def test_libs_common_is_scanned(self):
        files = list(python_files(ROOT / "libs" / "common"))
        assert any(f.name == "outbox.py" for f in files)


# --- the checks on bad examples ------------------------------------------------------------------


class TestImportCheck:
    @pytest.mark.parametrize(
        "source",
        [
            "import crm_beta",
            "import crm_beta.models as m",
            "from crm_beta import events",
            "from crm_beta.models.messaging import outbox",
            "def f():\n    from crm_beta.config import settings\n    return settings",
            "import importlib\nmod = importlib.import_module('crm_beta.events')",
            "mod = __import__('crm_beta')",
        ],
    )
    def test_importing_another_service_is_found(self, source):
        found = import_violations(source, "x.py", {"crm_beta"})
        assert [f.name for f in found] == ["crm_beta"]

    @pytest.mark.parametrize(
        "source",
        [
            "import crm_common.events",
            "from crm_alpha.models import outbox",
            "from . import models",
            "from .beta import x",
            "import crm_beta_tools",
            "'''Mentions crm_beta in prose.'''",
            "SUBJECT = 'crm.beta.order.placed'",
        ],
    )
    def test_allowed_imports_pass(self, source):
        assert import_violations(source, "x.py", {"crm_beta"}) == []


class TestSchemaCheck:
    @pytest.mark.parametrize(
        ("source", "how"),
        [
            ("text('SELECT id FROM beta.customers')", "SQL names"),
            ('sa.text(\'select * from "beta"."orders" where id = :id\')', "SQL names"),
            ("op.execute('UPDATE beta.orders SET x = 1')", "SQL names"),
            ("q = f'SELECT * FROM beta.orders WHERE id = {i}'", "SQL names"),
            ("text('SELECT ' + 'beta.orders.id')", "SQL names"),
            ("sa.ForeignKey('beta.customers.id')", "SQL names"),
            ("conn.exec_driver_sql('SET search_path TO beta, public')", "search_path names"),
            ("Table('t', metadata, schema='beta')", "schema="),
            ("SCHEMA = 'beta'\nop.create_table('t', schema=SCHEMA)", "schema="),
            (
                "op.create_foreign_key('fk', 't', 'u', ['a'], ['b'], referent_schema='beta')",
                "referent_schema=",
            ),
            ("metadata = make_metadata('beta')", "make_metadata"),
            ("metadata = crm_common.db.make_metadata(schema='beta')", "schema="),
            ("class T:\n    __table_args__ = {'schema': 'beta'}", '"schema" key of'),
        ],
    )
    def test_naming_another_schema_is_found(self, source, how):
        found = schema_references(source, "x.py", ["beta"])
        assert [(f.name, f.how) for f in found] == [("beta", how)]

    @pytest.mark.parametrize(
        "source",
        [
            "text('SELECT id FROM alpha.customers')",
            "SUBJECT = 'crm.beta.order.placed'",
            "Subscription('crm.beta.>', 'alpha-beta-orders', handler)",
            "'''Reads nothing from beta.customers: it keeps a projection.'''",
            "def f():\n    '''Unlike SELECT ... FROM beta.orders, this reads alpha only.'''",
            "text('SELECT alpha.beta_id FROM alpha.t')",
            "text('SELECT pg_notify(:channel, :payload)')",
            "logger.info('reading beta events')",
            "make_metadata('alpha')",
            "Table('t', metadata, schema='alpha')",
        ],
    )
    def test_allowed_strings_pass(self, source):
        assert schema_references(source, "x.py", ["beta"]) == []


class TestTreeCheck:
    def _write(self, root: Path, rel: str, source: str) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)

    def test_violations_in_a_checkout_are_found(self, tmp_path):
        self._write(tmp_path, "services/alpha/crm_alpha/__init__.py", "")
        self._write(tmp_path, "services/alpha/crm_alpha/ok.py", "from crm_alpha import x\n")
        self._write(tmp_path, "services/alpha/crm_alpha/bad.py", "from crm_beta.models import t\n")
        self._write(
            tmp_path,
            "services/alpha/migrations/versions/0001_x.py",
            "SCHEMA = 'beta'\n\ndef upgrade():\n    op.create_table('t', schema=SCHEMA)\n",
        )
        self._write(tmp_path, "services/beta/crm_beta/__init__.py", "")
        self._write(
            tmp_path, "services/beta/crm_beta/repo.py", "Q = text('DELETE FROM alpha.outbox')\n"
        )
        self._write(tmp_path, "libs/common/crm_common/leak.py", "import crm_alpha.config\n")
        self._write(tmp_path, "libs/common/crm_common/fine.py", "import crm_common.db\n")
        found = sorted(str(f) for f in tree_violations(tmp_path))
        assert found == [
            "libs/common/crm_common/leak.py:1: imports 'crm_alpha'",
            "services/alpha/crm_alpha/bad.py:1: imports 'crm_beta'",
            "services/alpha/migrations/versions/0001_x.py:4: schema= 'beta'",
            "services/beta/crm_beta/repo.py:1: SQL names 'alpha'",
        ]
