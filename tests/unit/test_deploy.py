"""The deploy files are valid and say what they mean.

compose.yaml against the compose-spec schema (vendored in check-jsonschema), the
Kubernetes manifests against Kubernetes' own schemas (kubernetes-validate, strict),
every DURATASK_* variable they set is a real setting, Temporal's images match the
embedded dev server's minor version, and Temporal's ports stay unpublished.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic import BaseModel

from duratask.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
KUBERNETES_VERSION = "1.33.0"


def _check_jsonschema() -> str:
    path = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
    assert Path(path).exists(), "check-jsonschema is a test dependency (make test installs it)"
    return path


def _validate_compose(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_check_jsonschema(), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())  # type: ignore[no-any-return]


def test_compose_matches_the_compose_spec() -> None:
    r = _validate_compose(DEPLOY / "compose.yaml")
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_compose_check_rejects_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "compose.yaml"
    broken.write_text("services:\n  x:\n    image: a\n    restart: [always]\n    depends_on: 5\n")
    assert _validate_compose(broken).returncode != 0


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifests_match_kubernetes_schemas(path: Path) -> None:
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_kubernetes_check_rejects_an_unknown_field() -> None:
    doc = yaml.safe_load((DEPLOY / "kubernetes" / "configmap.yaml").read_text())
    doc["spec"] = {"replicas": 2}  # a ConfigMap has no spec
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_manifests_cover_what_a_cluster_needs() -> None:
    kinds: dict[str, list[dict[str, Any]]] = {}
    for path in MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                kinds.setdefault(doc["kind"], []).append(doc)
    assert {
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "Job",
    } <= set(kinds)
    gateway = next(d for d in kinds["Deployment"] if d["metadata"]["name"] == "duratask-gateway")
    container = gateway["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    hpa = kinds["HorizontalPodAutoscaler"][0]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "duratask-worker"
    for deployment in kinds["Deployment"]:
        assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def _env_names() -> dict[str, set[str]]:
    """Every DURATASK_* name the deploy files set, by file."""
    found: dict[str, set[str]] = {}
    for path in [DEPLOY / "compose.yaml", DEPLOY / "Dockerfile", *MANIFESTS]:
        names = set(re.findall(r"\b(DURATASK_[A-Z0-9_]+)\s*[:=]", path.read_text()))
        names |= set(re.findall(r"name:\s*(DURATASK_[A-Z0-9_]+)", path.read_text()))
        found[path.name] = names
    return found


def _is_setting(env_name: str) -> bool:
    parts = env_name.removeprefix("DURATASK_").lower().split("__")
    model: type[BaseModel] = Settings
    for i, part in enumerate(parts):
        field = model.model_fields.get(part)
        if field is None:
            return False
        if i < len(parts) - 1:
            inner = field.annotation
            if not (isinstance(inner, type) and issubclass(inner, BaseModel)):
                return False
            model = inner
    return True


def test_every_variable_the_deploy_files_set_is_a_real_setting() -> None:
    names = _env_names()
    assert names["compose.yaml"] and names["configmap.yaml"]
    unknown = {f: sorted(n for n in ns if not _is_setting(n)) for f, ns in names.items()}
    assert not any(unknown.values()), unknown
    assert not _is_setting("DURATASK_NO_SUCH_THING")


def test_temporal_images_match_the_dev_server_and_stay_internal() -> None:
    out = subprocess.run(
        [shutil.which("temporal") or str(Path(sys.executable).parent / "temporal"), "--version"],
        capture_output=True, text=True, timeout=30,
    ).stdout  # fmt: skip
    server = re.search(r"Server (\d+\.\d+)\.", out)
    ui = re.search(r"UI (\d+\.\d+)\.", out)
    assert server and ui, out
    services = _compose()["services"]
    for name in ("temporal", "temporal-schema"):
        tag = services[name]["image"].rsplit(":", 1)[1]
        assert tag.startswith(server.group(1) + "."), (name, tag, out)
    assert services["temporal-ui"]["image"].rsplit(":", 1)[1].startswith(ui.group(1) + ".")
    for name in ("temporal", "temporal-ui", "postgres"):
        assert "ports" not in services[name], f"{name} must not be published"
    assert services["gateway"]["ports"] == ["127.0.0.1:8000:8000"]
    assert "healthcheck" in services["gateway"]


def test_compose_dynamic_config_matches_the_dev_server() -> None:
    from cli.devstack import DYNAMIC_CONFIG

    config = yaml.safe_load((DEPLOY / "temporal" / "dynamicconfig.yaml").read_text())
    for item in DYNAMIC_CONFIG:
        key, value = item.split("=", 1)
        assert str(config[key][0]["value"]).lower() == value.lower(), key


def test_the_image_runs_as_a_non_root_user() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert users and users[-1].split(":")[0] not in ("root", "0")
