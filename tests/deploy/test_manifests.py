"""deploy/k8s: every document of the base and of each rendered overlay is valid Kubernetes
1.33 (kubernetes-validate, strict, offline) and follows the suite's deployment policies.

Policies: requests and limits on every container, probes on the APIs, a locked-down security
context, no ``:latest`` images, each service complete (API, worker, migration Job, Service,
HPA, PDB, NetworkPolicy, ServiceAccount, ConfigMap), ports as in the README and the settings,
and only environment variables that the services' settings read.
"""

from __future__ import annotations

import importlib
import re
import tomllib
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import kubernetes_validate.utils  # type: ignore[import-untyped]
import pytest

from crm_common.settings import UNPREFIXED
from tests.deploy.render import load_yaml, pod_spec, render

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
K8S_VERSION = "1.33.0"
#: service -> (API port, worker metrics port), as the README documents them.
SERVICES = {
    "profile": (8001, 9101),
    "segment": (8002, 9102),
    "recommend": (8003, 9103),
    "notify": (8004, 9104),
    "loyalty": (8005, 9105),
}
OVERLAYS = {"dev": "crm-dev", "production": "crm"}
TARGETS = ["base", *OVERLAYS]
#: Secrets the manifests reference but do not contain (created by hand, README "Deploying").
SECRETS = {"crm-secrets": {"DATABASE_URL", "NATS_URL", "CRM_API_KEYS", "CRM_JWT_SECRET"}}
#: Variables read by libraries rather than the settings (thread pools of numpy / scipy).
RUNTIME_ENV = {"OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"}
Doc = dict[str, Any]
#: kubernetes-validate re-reads its JSON schemas (megabytes of definitions) for every document;
#: reading each once makes validating ~140 documents ten times faster.
_schema_contents = cache(kubernetes_validate.utils.schema_contents)
_all_versions = cache(kubernetes_validate.utils.all_versions)


@cache
def documents(target: str) -> list[Doc]:
    """The base's documents as written, or an overlay's as rendered."""
    return render(K8S / "base") if target == "base" else render(K8S / "overlays" / target)


def find(target: str, kind: str, name: str) -> Doc:
    """The one document of ``kind`` named ``name``."""
    found = [d for d in documents(target) if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{target}: expected one {kind} {name}, found {len(found)}"
    return found[0]


def containers(target: str) -> Iterator[tuple[Doc, Doc]]:
    """(workload, container) for every container of every workload."""
    for doc in documents(target):
        spec = pod_spec(doc)
        for container in spec.get("initContainers", []) + spec.get("containers", []):
            yield doc, container


def workloads(target: str) -> Iterator[Doc]:
    """Every document that runs pods."""
    return (d for d in documents(target) if pod_spec(d))


def settings_env(svc: str) -> set[str]:
    """Every variable the service's settings read: ``<SVC>_<FIELD>`` and the unprefixed ones."""
    settings_cls = importlib.import_module(f"crm_{svc}.config").Settings
    prefix = settings_cls.model_config["env_prefix"]
    fields = settings_cls.model_fields
    return {prefix + f.upper() for f in fields} | {UNPREFIXED[f] for f in fields if f in UNPREFIXED}


class TestLayout:
    def test_every_yaml_file_is_listed_in_its_kustomization(self) -> None:
        dirs = {p.parent for p in K8S.rglob("*.yaml")}
        for directory in dirs:
            (kust,) = load_yaml(directory / "kustomization.yaml")
            listed = {r for r in kust.get("resources", []) if not (directory / r).is_dir()}
            files = {p.name for p in directory.glob("*.yaml")} - {"kustomization.yaml"}
            assert listed == files, directory

    def test_base_has_one_directory_per_service(self) -> None:
        (kust,) = load_yaml(K8S / "base" / "kustomization.yaml")
        assert kust["resources"] == ["common", *SERVICES]

    def test_readme_ports_are_the_ones_deployed(self) -> None:
        readme = (ROOT / "README.md").read_text()
        table = dict(re.findall(r"^\| \*\*(\w+)\*\* \| (\d+) \|", readme, re.MULTILINE))
        assert {svc: int(port) for svc, port in table.items()} == {
            svc: api for svc, (api, _) in SERVICES.items()
        }
        assert "9101-9105" in readme

    @pytest.mark.parametrize("svc", SERVICES)
    def test_settings_default_ports_are_the_ones_deployed(self, svc: str) -> None:
        fields = importlib.import_module(f"crm_{svc}.config").Settings.model_fields
        assert (fields["api_port"].default, fields["worker_metrics_port"].default) == SERVICES[svc]


@pytest.mark.parametrize("target", TARGETS)
def test_every_document_is_valid_kubernetes(target: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kubernetes_validate.utils, "schema_contents", _schema_contents)
    monkeypatch.setattr(kubernetes_validate.utils, "all_versions", _all_versions)
    errors = []
    for doc in documents(target):
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message}")
    assert not errors, "\n".join(errors)
    assert len(documents(target)) == 1 + 9 * len(SERVICES)


@pytest.mark.parametrize("target", TARGETS)
class TestPolicies:
    def test_every_container_has_requests_and_limits(self, target: str) -> None:
        for doc, container in containers(target):
            resources = container.get("resources", {})
            assert {"cpu", "memory"} <= set(resources.get("requests", {})), doc["metadata"]
            assert {"cpu", "memory"} <= set(resources.get("limits", {})), doc["metadata"]

    def test_pods_run_locked_down(self, target: str) -> None:
        for doc in workloads(target):
            spec = pod_spec(doc)
            assert spec["automountServiceAccountToken"] is False
            assert spec["serviceAccountName"] == doc["metadata"]["labels"]["app.kubernetes.io/name"]
            pod = spec["securityContext"]
            assert pod["runAsNonRoot"] is True and pod["runAsUser"] == 1000
            assert pod["seccompProfile"] == {"type": "RuntimeDefault"}
            assert {v["name"]: v for v in spec["volumes"]}["tmp"]["emptyDir"]
        for doc, container in containers(target):
            ctx = container["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True, doc["metadata"]["name"]
            assert ctx["allowPrivilegeEscalation"] is False
            assert ctx.get("privileged", False) is False
            assert ctx["capabilities"] == {"drop": ["ALL"]}
            assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]

    def test_images_are_pinned(self, target: str) -> None:
        for _, container in containers(target):
            image = container["image"]
            assert "@sha256:" in image or re.search(r":[\w.-]+$", image.split("/")[-1]), image
            assert not image.endswith(":latest"), image

    def test_every_service_is_complete(self, target: str) -> None:
        for svc in SERVICES:
            api = find(target, "Deployment", f"crm-{svc}-api")
            find(target, "Deployment", f"crm-{svc}-worker")
            find(target, "Job", f"crm-{svc}-migrate")
            find(target, "ServiceAccount", f"crm-{svc}")
            find(target, "ConfigMap", f"crm-{svc}-config")
            pod_labels = api["spec"]["template"]["metadata"]["labels"]
            service = find(target, "Service", f"crm-{svc}")
            assert service["spec"]["selector"].items() <= pod_labels.items()
            hpa = find(target, "HorizontalPodAutoscaler", f"crm-{svc}-api")
            assert hpa["spec"]["scaleTargetRef"]["name"] == api["metadata"]["name"]
            assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
            pdb = find(target, "PodDisruptionBudget", f"crm-{svc}-api")
            assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
            policy = find(target, "NetworkPolicy", f"crm-{svc}")
            for doc in workloads(target):
                labels = doc["spec"]["template"]["metadata"]["labels"]
                selected = policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
                assert selected == (labels["app.kubernetes.io/name"] == f"crm-{svc}")

    def test_references_resolve(self, target: str) -> None:
        config_maps = {d["metadata"]["name"] for d in documents(target) if d["kind"] == "ConfigMap"}
        accounts = {
            d["metadata"]["name"] for d in documents(target) if d["kind"] == "ServiceAccount"
        }
        for doc, container in containers(target):
            assert pod_spec(doc)["serviceAccountName"] in accounts
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in config_maps
            for var in container.get("env", []):
                if ref := var.get("valueFrom", {}).get("secretKeyRef"):
                    assert ref["key"] in SECRETS[ref["name"]], var

    @pytest.mark.parametrize("svc", SERVICES)
    def test_api(self, target: str, svc: str) -> None:
        api_port, _ = SERVICES[svc]
        deployment = find(target, "Deployment", f"crm-{svc}-api")
        spec = deployment["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        assert container["command"] == [f"crm-{svc}-api"]
        assert container["ports"] == [
            {"name": "http", "containerPort": api_port, "protocol": "TCP"}
        ]
        probes = {
            kind: container[f"{kind}Probe"]["httpGet"]
            for kind in ("startup", "readiness", "liveness")
        }
        assert probes == {
            "startup": {"path": "/healthz", "port": "http"},
            "readiness": {"path": "/readyz", "port": "http"},
            "liveness": {"path": "/healthz", "port": "http"},
        }
        pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert spec["terminationGracePeriodSeconds"] >= max(30, pre_stop + 10 + 5)
        assert scrape_annotations(deployment) == api_port
        secrets = {v["name"] for v in container["env"] if "valueFrom" in v}
        assert secrets == SECRETS["crm-secrets"]
        assert find(target, "Service", f"crm-{svc}")["spec"]["ports"][0]["port"] == api_port
        if target == "base":
            assert deployment["spec"]["replicas"] == 2

    @pytest.mark.parametrize("svc", SERVICES)
    def test_worker(self, target: str, svc: str) -> None:
        _, metrics_port = SERVICES[svc]
        deployment = find(target, "Deployment", f"crm-{svc}-worker")
        spec = deployment["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        assert container["command"] == [f"crm-{svc}-worker"]
        assert container["ports"] == [
            {"name": "metrics", "containerPort": metrics_port, "protocol": "TCP"}
        ]
        assert container["livenessProbe"]["httpGet"] == {"path": "/metrics", "port": "metrics"}
        subscriptions = importlib.import_module(f"crm_{svc}.consumers").SUBSCRIPTIONS
        longest_ack_wait = max((s.ack_wait for s in subscriptions), default=0)
        assert spec["terminationGracePeriodSeconds"] >= max(30, longest_ack_wait + 10)
        assert scrape_annotations(deployment) == metrics_port
        # production runs two segment workers: one process is one core, and its consumers and
        # re-evaluation need two at 200 orders/s (bench/membership_latency.py --workers 2)
        replicas = 2 if (target, svc) == ("production", "segment") else 1
        assert deployment["spec"]["replicas"] == replicas
        if svc == "segment":  # numpy / scipy / scikit-learn batches
            others = find(target, "Deployment", "crm-profile-worker")
            assert memory(container) > memory(pod_spec(others)["containers"][0])

    @pytest.mark.parametrize("svc", SERVICES)
    def test_migration_job(self, target: str, svc: str) -> None:
        job = find(target, "Job", f"crm-{svc}-migrate")
        spec = job["spec"]["template"]["spec"]
        assert spec["restartPolicy"] == "Never"
        (container,) = spec["containers"]
        assert container["command"] == ["crm-migrate"]
        assert [v["name"] for v in container["env"]] == ["DATABASE_URL"]
        api = pod_spec(find(target, "Deployment", f"crm-{svc}-api"))["containers"][0]
        assert container["image"] == api["image"]

    @pytest.mark.parametrize("svc", SERVICES)
    def test_config_and_env_names_are_settings(self, target: str, svc: str) -> None:
        known = settings_env(svc) | RUNTIME_ENV
        config = find(target, "ConfigMap", f"crm-{svc}-config")["data"]
        assert set(config) <= known
        assert set(find(target, "ConfigMap", "crm-config")["data"]) <= known
        prefix = svc.upper()
        api_port, metrics_port = SERVICES[svc]
        assert config[f"{prefix}_API_HOST"] == "0.0.0.0"
        assert (config[f"{prefix}_API_PORT"], config[f"{prefix}_WORKER_METRICS_PORT"]) == (
            str(api_port),
            str(metrics_port),
        )
        assert find(target, "ConfigMap", "crm-config")["data"]["CRM_ENV"] == "production"
        for doc, container in containers(target):
            if doc["metadata"]["labels"]["app.kubernetes.io/name"] == f"crm-{svc}":
                assert {v["name"] for v in container.get("env", [])} <= known

    @pytest.mark.parametrize("svc", SERVICES)
    def test_network_policy(self, target: str, svc: str) -> None:
        spec = find(target, "NetworkPolicy", f"crm-{svc}")["spec"]
        assert spec["policyTypes"] == ["Ingress", "Egress"]
        ingress = [(p["protocol"], p["port"]) for rule in spec["ingress"] for p in rule["ports"]]
        assert sorted(ingress) == [("TCP", port) for port in SERVICES[svc]]
        assert all("from" not in rule for rule in spec["ingress"])
        egress = {(p["protocol"], p["port"]) for rule in spec["egress"] for p in rule["ports"]}
        assert egress == {("TCP", 5432), ("TCP", 4222), ("UDP", 53), ("TCP", 53)}


def scrape_annotations(deployment: Doc) -> int:
    """The port Prometheus is told to scrape (checking the other scrape annotations)."""
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/path"] == "/metrics"
    return int(annotations["prometheus.io/port"])


def memory(container: Doc) -> int:
    """The container's memory limit in MiB (Mi and Gi suffixes)."""
    value = container["resources"]["limits"]["memory"]
    return int(value[:-2]) * (1024 if value.endswith("Gi") else 1)


class TestOverlays:
    @pytest.mark.parametrize(("overlay", "namespace"), OVERLAYS.items())
    def test_everything_lands_in_the_overlay_namespace(self, overlay: str, namespace: str) -> None:
        assert {d["metadata"].get("namespace") for d in documents(overlay)} == {namespace}
        assert {d["metadata"].get("namespace") for d in documents("base")} == {None}

    def test_production(self) -> None:
        for svc in SERVICES:
            config = find("production", "ConfigMap", f"crm-{svc}-config")["data"]
            assert config[f"{svc.upper()}_STREAM_REPLICAS"] == "3"
            assert find("production", "Deployment", f"crm-{svc}-api")["spec"]["replicas"] == 3
            hpa = find("production", "HorizontalPodAutoscaler", f"crm-{svc}-api")
            assert hpa["spec"]["minReplicas"] == 3
        for _, container in containers("production"):
            assert container["image"].startswith("registry.example.com/crm/crm-")

    def test_pre_rollout_selection_holds_what_the_migrations_need(self) -> None:
        # README: kubectl apply -k ... -l 'app.kubernetes.io/component notin (api,worker)'
        # applies these first; the Deployments follow once the Jobs have completed.
        first = {
            d["kind"]
            for d in documents("production")
            if d["metadata"]["labels"].get("app.kubernetes.io/component") not in {"api", "worker"}
        }
        assert first == {"ConfigMap", "ServiceAccount", "NetworkPolicy", "Job"}

    def test_dev(self) -> None:
        for svc in SERVICES:
            assert find("dev", "Deployment", f"crm-{svc}-api")["spec"]["replicas"] == 1
            assert (
                find("dev", "ConfigMap", f"crm-{svc}-config")["data"][
                    f"{svc.upper()}_STREAM_REPLICAS"
                ]
                == "1"
            )
        for _, container in containers("dev"):
            assert container["image"].endswith(":0.1.0-dev")


def test_console_scripts_match_the_manifests() -> None:
    for svc in SERVICES:
        project = tomllib.loads((ROOT / "services" / svc / "pyproject.toml").read_text())
        assert project["project"]["scripts"] == {
            f"crm-{svc}-api": f"crm_{svc}.app:main",
            f"crm-{svc}-worker": f"crm_{svc}.worker:main",
        }
