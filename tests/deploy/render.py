"""A small Kustomize in Python: CI has no kustomize binary, so the tests render overlays here.

It implements only what ``deploy/k8s`` uses: ``resources`` (files and directories), ``namespace``,
``images`` (``newName`` / ``newTag`` / ``digest``), ``replicas``, and ``patches`` given inline as
JSON 6902 operations on a ``kind`` (+ optional ``name``) target. Any other field, and a patch
or replica rule that matches nothing, is an error: an overlay that needs more must grow this
renderer (and its tests) first, rather than render differently from ``kubectl kustomize``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

__all__ = ["load_yaml", "pod_spec", "render", "set_image"]

Doc = dict[str, Any]
FIELDS = {"apiVersion", "kind", "resources", "namespace", "images", "replicas", "patches"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PriorityClass"}


def load_yaml(path: Path) -> list[Doc]:
    """Every non-empty YAML document of ``path``."""
    with path.open() as f:
        return [doc for doc in yaml.safe_load_all(f) if doc]


def render(directory: Path) -> list[Doc]:
    """The documents that ``kubectl kustomize <directory>`` prints (in file order)."""
    (kust,) = load_yaml(directory / "kustomization.yaml")
    if unknown := set(kust) - FIELDS:
        raise ValueError(f"{directory}: unsupported kustomization fields {sorted(unknown)}")
    docs: list[Doc] = []
    for entry in kust.get("resources", []):
        path = directory / entry
        docs += render(path) if path.is_dir() else load_yaml(path)
    for patch in kust.get("patches", []):
        targets = [d for d in docs if _matches(d, patch["target"])]
        if set(patch) != {"target", "patch"} or not targets:
            raise ValueError(f"{directory}: unsupported or unmatched patch {patch}")
        for doc in targets:
            for op in yaml.safe_load(patch["patch"]):
                _apply(doc, op)
    for rule in kust.get("replicas", []):
        workloads = [d for d in docs if d["kind"] == "Deployment" and _name(d) == rule["name"]]
        if not workloads:
            raise ValueError(f"{directory}: replicas rule {rule} matches no Deployment")
        for doc in workloads:
            doc["spec"]["replicas"] = rule["count"]
    for doc in docs:
        spec = pod_spec(doc)
        for container in spec.get("initContainers", []) + spec.get("containers", []):
            for rule in kust.get("images", []):
                container["image"] = set_image(container["image"], rule)
        if "namespace" in kust and doc["kind"] not in CLUSTER_SCOPED:
            doc["metadata"]["namespace"] = kust["namespace"]
    return docs


def pod_spec(doc: Doc) -> Doc:
    """The pod spec of a workload (Deployment, Job, CronJob, ...), or ``{}``."""
    spec = doc.get("spec", {})
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec.get("template", {}).get("spec", {})  # type: ignore[no-any-return]


def set_image(image: str, rule: Doc) -> str:
    """``image`` rewritten by a kustomize ``images`` rule when the rule's name is its name."""
    name, sep, ref = image.partition("@")
    if not sep:
        head, _, last = image.rpartition("/")
        base, sep, ref = last.partition(":")
        name = f"{head}/{base}" if head else base
    if name != rule["name"]:
        return image
    name = rule.get("newName", name)
    if "digest" in rule:
        return f"{name}@{rule['digest']}"
    if "newTag" in rule:
        return f"{name}:{rule['newTag']}"
    return f"{name}{sep}{ref}"


def _name(doc: Doc) -> str:
    return str(doc["metadata"]["name"])


def _matches(doc: Doc, target: Doc) -> bool:
    if set(target) - {"kind", "name"}:
        raise ValueError(f"unsupported patch target {target}")
    return doc["kind"] == target["kind"] and bool(
        re.fullmatch(target.get("name", ".*"), _name(doc))
    )


def _apply(doc: Doc, op: Doc) -> None:
    """One JSON 6902 ``add`` / ``replace`` / ``remove`` operation, in place."""
    *parents, last = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
    node: Any = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    key: Any = (len(node) if last == "-" else int(last)) if isinstance(node, list) else last
    if op["op"] == "remove":
        del node[key]
    elif op["op"] == "replace":
        if isinstance(node, dict) and key not in node:
            raise KeyError(f"replace of a missing member {op['path']}")  # RFC 6902, 4.3
        node[key] = op["value"]
    elif op["op"] == "add" and isinstance(node, list):
        node.insert(key, op["value"])
    elif op["op"] == "add":
        node[key] = op["value"]
    else:
        raise ValueError(f"unsupported patch operation {op}")
