"""The Python renderer of deploy/k8s overlays (tests/deploy/render.py), on small examples and,
when a kubectl with kustomize v5 is at hand, against ``kubectl kustomize`` itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.render import render, set_image

K8S = Path(__file__).resolve().parents[2] / "deploy" / "k8s"
DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web"},
    "spec": {
        "replicas": 2,
        "template": {"spec": {"containers": [{"name": "c", "image": "web:1.0"}]}},
    },
}
CONFIG_MAP = {
    "apiVersion": "v1",
    "kind": "ConfigMap",
    "metadata": {"name": "cfg"},
    "data": {"A": "1"},
}


def write(directory: Path, kustomization: dict[str, object], **files: object) -> Path:
    """A kustomization directory with ``files`` (name without .yaml -> document)."""
    directory.mkdir(parents=True, exist_ok=True)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
    } | kustomization
    (directory / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    for name, doc in files.items():
        (directory / f"{name}.yaml").write_text(yaml.safe_dump(doc))
    return directory


@pytest.fixture
def base(tmp_path: Path) -> Path:
    return write(
        tmp_path / "base", {"resources": ["web.yaml", "cfg.yaml"]}, web=DEPLOYMENT, cfg=CONFIG_MAP
    )


def overlay(tmp_path: Path, **fields: object) -> Path:
    return write(tmp_path / "overlay", {"resources": ["../base"], **fields})


class TestRender:
    def test_resources_are_read_recursively_and_unchanged(self, base: Path) -> None:
        assert render(base) == [DEPLOYMENT, CONFIG_MAP]

    def test_namespace_images_replicas(self, base: Path, tmp_path: Path) -> None:
        images = [{"name": "web", "newName": "reg.example/web", "newTag": "2.0"}]
        web, cfg = render(
            overlay(tmp_path, namespace="ns", images=images, replicas=[{"name": "web", "count": 5}])
        )
        assert web["metadata"]["namespace"] == cfg["metadata"]["namespace"] == "ns"
        assert web["spec"]["template"]["spec"]["containers"][0]["image"] == "reg.example/web:2.0"
        assert web["spec"]["replicas"] == 5
        assert DEPLOYMENT["spec"]["replicas"] == 2  # the base files are read afresh

    def test_json6902_patches(self, base: Path, tmp_path: Path) -> None:
        ops = [
            {"op": "replace", "path": "/data/A", "value": "2"},
            {"op": "add", "path": "/data/B~1C", "value": "3"},
            {"op": "remove", "path": "/metadata/name"},
        ]
        patches = [{"target": {"kind": "ConfigMap", "name": "cf."}, "patch": yaml.safe_dump(ops)}]
        _, cfg = render(overlay(tmp_path, patches=patches))
        assert cfg == {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {},
            "data": {"A": "2", "B/C": "3"},
        }

    def test_add_to_a_list(self, base: Path, tmp_path: Path) -> None:
        ops = [{"op": "add", "path": "/spec/template/spec/containers/-", "value": {"name": "d"}}]
        patches = [{"target": {"kind": "Deployment"}, "patch": yaml.safe_dump(ops)}]
        web, _ = render(overlay(tmp_path, patches=patches))
        assert [c["name"] for c in web["spec"]["template"]["spec"]["containers"]] == ["c", "d"]

    @pytest.mark.parametrize(
        "fields",
        [
            {"commonLabels": {"a": "b"}},
            {"patches": [{"target": {"kind": "Secret"}, "patch": "[]"}]},
            {"patches": [{"target": {"kind": "ConfigMap", "labelSelector": "a=b"}, "patch": "[]"}]},
            {"patches": [{"path": "patch.yaml", "target": {"kind": "ConfigMap"}}]},
            {
                "patches": [
                    {"target": {"kind": "ConfigMap"}, "patch": "[{op: move, path: /data/A}]"}
                ]
            },
            {"replicas": [{"name": "nope", "count": 1}]},
        ],
    )
    def test_anything_else_is_refused(
        self, base: Path, tmp_path: Path, fields: dict[str, object]
    ) -> None:
        with pytest.raises((ValueError, KeyError)):
            render(overlay(tmp_path, **fields))

    def test_replace_needs_an_existing_member(self, base: Path, tmp_path: Path) -> None:
        patch = yaml.safe_dump([{"op": "replace", "path": "/data/Z", "value": "1"}])
        with pytest.raises(KeyError):
            render(overlay(tmp_path, patches=[{"target": {"kind": "ConfigMap"}, "patch": patch}]))


@pytest.mark.parametrize(
    ("image", "rule", "expected"),
    [
        ("web:1.0", {"name": "web", "newTag": "2"}, "web:2"),
        ("web", {"name": "web", "newTag": "2"}, "web:2"),
        ("web:1.0", {"name": "web", "digest": "sha256:ab"}, "web@sha256:ab"),
        ("web@sha256:ab", {"name": "web", "newName": "r:5000/web"}, "r:5000/web@sha256:ab"),
        ("r:5000/web:1", {"name": "r:5000/web", "newTag": "2"}, "r:5000/web:2"),
        ("web:1.0", {"name": "other", "newTag": "2"}, "web:1.0"),
        ("webapp:1.0", {"name": "web", "newTag": "2"}, "webapp:1.0"),
    ],
)
def test_set_image(image: str, rule: dict[str, str], expected: str) -> None:
    assert set_image(image, rule) == expected
