"""The Prometheus addon's configuration, recording rules and manifest: checked by the real
promtool (Debian's prometheus package) and by isthmus's own validation."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from isthmus.api.loader import load_documents
from isthmus.runtime.addons import ADDON_ANNOTATION, ADDON_MOUNT
from isthmus.telemetry import prometheus_addon as addon


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("promtool (Debian's prometheus package) is not installed")
    return found


def test_promtool_accepts_the_configuration_and_its_rules(tmp_path: Path) -> None:
    """The files as the pod sees them, moved under tmp_path (promtool reads the rules)."""
    (tmp_path / addon.RULES_FILE).write_text(addon.recording_rules())
    config = tmp_path / addon.CONFIG_FILE
    config.write_text(addon.config().replace(str(ADDON_MOUNT), str(tmp_path)))
    checked = subprocess.run(
        [promtool(), "check", "config", str(config)], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"{len(addon.ISTIO_SERIES)} rules found" in checked.stdout


def test_one_job_reads_the_file_sd_list_every_few_seconds() -> None:
    config = yaml.safe_load(addon.config())
    assert config["global"]["scrape_interval"] == "5s"
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "kubernetes-pods"
    assert job["file_sd_configs"][0]["files"] == ["/run/isthmus/addon/file_sd/*.json"]
    assert config["rule_files"] == ["/run/isthmus/addon/rules.yml"]


def test_recording_rules_sum_away_instance_and_pod() -> None:
    rules = yaml.safe_load(addon.recording_rules())["groups"][0]["rules"]
    by_name = {r["record"]: r["expr"] for r in rules}
    assert by_name["workload:istio_requests_total"] == (
        "sum without(instance, pod) (istio_requests_total)"
    )


def test_the_manifest_is_valid_and_runs_prometheus_sidecar_less_as_nobody() -> None:
    bodies = addon.manifest("istio-system", "/usr/bin/prometheus")
    text = "\n---\n".join(json.dumps(b) for b in bodies)
    loaded = load_documents(text, "addon")
    assert [(o.resource.kind, o.resource.metadata.namespace) for o in loaded] == [
        ("Service", "istio-system"),
        ("Deployment", "istio-system"),
    ]
    template = bodies[1]["spec"]["template"]
    assert template["metadata"]["annotations"] == {
        "sidecar.istio.io/inject": "false",
        ADDON_ANNOTATION: "prometheus",
    }
    assert template["spec"]["securityContext"]["runAsUser"] == 65534
    (container,) = template["spec"]["containers"]
    assert container["command"] == ["/usr/bin/prometheus"]
    assert "--storage.tsdb.path=/run/isthmus/addon/data" in container["args"]
    assert "--web.listen-address=:9090" in container["args"]
    assert bodies[0]["spec"]["ports"] == [{"name": "http", "port": 9090}]
