"""services/<svc>/Dockerfile: one template for the five services, non-root, entry points that
are the service's console scripts, and a .dockerignore that keeps local state out."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {
    "profile": (8001, 9101),
    "segment": (8002, 9102),
    "recommend": (8003, 9103),
    "notify": (8004, 9104),
    "loyalty": (8005, 9105),
}


def dockerfile(svc: str) -> str:
    return (ROOT / "services" / svc / "Dockerfile").read_text()


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n(\s*#.*\n)*", " ", text)
    lines = [line.strip() for line in joined.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def scripts(svc: str) -> dict[str, str]:
    project = tomllib.loads((ROOT / "services" / svc / "pyproject.toml").read_text())
    return project["project"]["scripts"]  # type: ignore[no-any-return]


def test_the_five_dockerfiles_are_one_template() -> None:
    template = dockerfile("profile")
    for svc, (api, metrics) in SERVICES.items():
        expected = (
            template.replace("profile", svc)
            .replace("PROFILE", svc.upper())
            .replace("8001", str(api))
            .replace("9101", str(metrics))
        )
        # Every workspace member's pyproject.toml is copied once, whatever the service.
        expected = re.sub(r"COPY services/\w+/pyproject.toml.*\n", "", expected)
        assert re.sub(r"COPY services/\w+/pyproject.toml.*\n", "", dockerfile(svc)) == expected, svc


@pytest.mark.parametrize("svc", SERVICES)
class TestDockerfile:
    def test_multi_stage_on_python_3_11_slim(self, svc: str) -> None:
        steps = instructions(dockerfile(svc))
        assert [args for op, args in steps if op == "FROM"] == [
            "${PYTHON_IMAGE} AS builder",
            "${PYTHON_IMAGE} AS runtime",
        ]
        assert ("ARG", "PYTHON_IMAGE=python:3.11-slim-bookworm") in steps

    def test_installs_the_locked_member_without_dev_dependencies(self, svc: str) -> None:
        runs = [args for op, args in instructions(dockerfile(svc)) if op == "RUN"]
        syncs = [r for r in runs if "uv sync" in r]
        assert len(syncs) == 2
        for sync in syncs:
            assert "--locked --no-dev" in sync and sync.endswith(f"--package crm-{svc}")
        root = tomllib.loads((ROOT / "pyproject.toml").read_text())
        members = {
            p.parent.relative_to(ROOT).as_posix()
            for pattern in root["tool"]["uv"]["workspace"]["members"]
            for p in ROOT.glob(f"{pattern}/pyproject.toml")
        }
        copied = {
            m.group(1)
            for op, args in instructions(dockerfile(svc))
            if op == "COPY" and (m := re.fullmatch(r"(\S+)/pyproject.toml \1/", args))
        }
        assert copied == members  # uv --locked needs every member's metadata

    def test_runs_as_uid_1000_without_writing_bytecode(self, svc: str) -> None:
        steps = instructions(dockerfile(svc))
        users = [args for op, args in steps if op == "USER"]
        assert users[-1] == "1000:1000"
        env = " ".join(args for op, args in steps if op == "ENV")
        assert "PYTHONDONTWRITEBYTECODE=1" in env
        assert f"{svc.upper()}_API_HOST=0.0.0.0" in env
        assert "HOME=/tmp" in env

    def test_commands_are_the_console_scripts(self, svc: str) -> None:
        steps = instructions(dockerfile(svc))
        (cmd,) = [json.loads(args) for op, args in steps if op == "CMD"]
        assert cmd == [f"crm-{svc}-api"]
        assert scripts(svc)[f"crm-{svc}-api"] == f"crm_{svc}.app:main"
        text = dockerfile(svc)
        assert f"crm-{svc}-worker " in text and f"crm_{svc}.worker:main" in scripts(svc).values()
        # crm-migrate, the migration Job's command, is a script the image itself defines.
        assert "exec alembic -c /app/alembic.ini upgrade" in text
        assert "> /usr/local/bin/crm-migrate" in text
        assert f"COPY --from=builder /src/services/{svc}/migrations /app/migrations" in text

    def test_exposes_the_documented_ports(self, svc: str) -> None:
        exposed = [args for op, args in instructions(dockerfile(svc)) if op == "EXPOSE"]
        assert exposed == [" ".join(map(str, SERVICES[svc]))]


def test_dockerignore_keeps_local_state_out() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".venv", ".dev", ".tools", "tests", "bench", ".git", "**/__pycache__"} <= ignored
