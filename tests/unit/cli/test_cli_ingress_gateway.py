"""`isthmus up`'s ingress gateway: its objects pass apply's own checks and are Istio's
(names, labels, ports, gateway injection), `--ingress-port` is checked before anything
starts, and an `up` of a mesh that is still there keeps the ingress choices it was
started with."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from isthmus.api import load_documents
from isthmus.api.core import Deployment, Service, ServiceAccount
from isthmus.api.published_ports import PublishedPort
from isthmus.cli.errors import UserError
from isthmus.cli.ingress_gateway import manifest, namespace_document
from isthmus.cli.lifecycle import Settings, _ingress_settings, _write_settings
from isthmus.cli.main import cli
from isthmus.home import MeshHome
from isthmus.runtime.controller import injected, pod_labels
from isthmus.runtime.records import PodRecords

SELECTOR = {"app": "istio-ingressgateway", "istio": "ingressgateway"}


def _loaded(published: tuple[PublishedPort, ...] = ()) -> dict[str, object]:
    bodies = [namespace_document(), *manifest(published)]
    loaded = load_documents("\n---\n".join(json.dumps(body) for body in bodies), "up")
    return {obj.resource.kind: obj.resource for obj in loaded}


def test_the_objects_pass_applys_checks_and_carry_istios_names() -> None:
    objects = _loaded()
    account, service, deployment = (
        objects["ServiceAccount"],
        objects["Service"],
        objects["Deployment"],
    )
    assert isinstance(account, ServiceAccount) and isinstance(service, Service)
    assert isinstance(deployment, Deployment)
    assert account.metadata.name == "istio-ingressgateway-service-account"
    for obj in (service, deployment):
        assert (obj.metadata.name, obj.metadata.namespace) == (
            "istio-ingressgateway",
            "istio-system",
        )
        assert obj.metadata.labels["istio"] == "ingressgateway"
        assert obj.metadata.labels["app.kubernetes.io/managed-by"] == "isthmus"
    assert service.spec.selector == SELECTOR
    assert [(p.name, p.port) for p in service.spec.ports] == [("http2", 80), ("https", 443)]
    template = deployment.spec.template
    assert template.spec.gateway
    assert template.spec.service_account_name == "istio-ingressgateway-service-account"
    assert template.metadata is not None
    assert template.metadata.labels == {**SELECTOR, "sidecar.istio.io/inject": "true"}
    assert template.metadata.annotations == {"inject.istio.io/templates": "gateway"}
    # The runtime runs it as a gateway: its agent, no tlsMode label for mesh clients.
    assert injected(template, inject_ns=True)
    assert "security.istio.io/tlsMode" not in pod_labels(template, "h", inject=True)


def test_published_ports_become_the_templates_annotation() -> None:
    deployment = _loaded((PublishedPort(8080, 80), PublishedPort(8443, 443)))["Deployment"]
    assert isinstance(deployment, Deployment)
    annotations = deployment.spec.template.metadata.annotations  # type: ignore[union-attr]
    assert annotations["isthmus.io/published-ports"] == "8080:80,8443:443"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ingress-port", "8080"], "'8080' is not HOSTPORT:PORT"),
        (["--ingress-port", "8080:80", "--ingress-port", "8080:443"], "published twice"),
        (["--ingress-port", "0:80"], "out of range"),
    ],
)
def test_a_bad_ingress_port_is_refused_before_anything_starts(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = CliRunner().invoke(cli, ["--home", str(tmp_path / "home"), "up", *args])
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: Invalid value for '--ingress-port'") and message in line, line
    assert not (tmp_path / "home").exists()


def _home(tmp_path: Path, gateway: bool, ports: str, *, present: bool) -> MeshHome:
    home = MeshHome(tmp_path / "home")
    home.root.mkdir(parents=True)
    _write_settings(
        home,
        Settings("m", "10.44.0.0/16", "10.96.0.0/16", ingress_gateway=gateway, ingress_ports=ports),
    )
    if present:  # the processes were killed; a pod record says its pods may run on
        PodRecords(home.node_state / "pods").save("default.web-1", {"name": "web-1"})
    return home


def test_a_fresh_up_installs_a_gateway_and_publishes_nothing(tmp_path: Path) -> None:
    home = MeshHome(tmp_path / "home")
    assert _ingress_settings(home, None, ()) == (True, "")
    assert _ingress_settings(home, None, ("8080:80",)) == (True, "8080:80")
    assert _ingress_settings(home, False, ()) == (False, "")


def test_an_up_of_a_mesh_still_there_keeps_its_ingress_choices(tmp_path: Path) -> None:
    home = _home(tmp_path, False, "", present=True)
    assert _ingress_settings(home, None, ()) == (False, "")
    assert _ingress_settings(home, True, ()) == (True, "")  # given: a different mesh, refused later
    other = _home(tmp_path / "b", True, "8080:80", present=True)
    assert _ingress_settings(other, None, ()) == (True, "8080:80")


def test_after_down_the_defaults_apply_again(tmp_path: Path) -> None:
    home = _home(tmp_path, False, "", present=False)
    assert _ingress_settings(home, None, ()) == (True, "")


def test_ports_without_a_gateway_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not with --no-ingress-gateway"):
        _ingress_settings(MeshHome(tmp_path), False, ("8080:80",))


def test_the_choices_are_kept_in_the_homes_settings(tmp_path: Path) -> None:
    home = _home(tmp_path, True, "8080:80,8443:443", present=False)
    data = json.loads(home.settings.read_text())
    assert (data["ingressGateway"], data["ingressPorts"]) == (True, "8080:80,8443:443")
