"""Istio's injector rule for Prometheus annotations: a sidecar pod is scraped on the agent's
:15020, the template's own scrape settings go to the agent, and the opt-outs hold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from isthmus.api.core import PodSpec
from isthmus.model.pods import pod_view
from isthmus.runtime.pod import Pod, PodContext
from isthmus.runtime.records import PodRecords
from isthmus.runtime.scrape_annotations import scrape_annotations

AGENT = {
    "prometheus.io/scrape": "true",
    "prometheus.io/port": "15020",
    "prometheus.io/path": "/stats/prometheus",
}


def test_a_sidecar_pod_is_scraped_on_the_agent() -> None:
    result = scrape_annotations({"proxy.istio.io/config": "{}"}, sidecar=True)
    assert result.annotations == {"proxy.istio.io/config": "{}", **AGENT}
    assert result.agent_config is None  # nothing of the app's to merge


def test_the_apps_own_scrape_settings_go_to_the_agent() -> None:
    template = {"prometheus.io/scrape": "true", "prometheus.io/port": "9090", "a": "b"}
    result = scrape_annotations(template, sidecar=True)
    assert result.annotations == {"a": "b", **AGENT}
    assert result.agent_config is not None
    assert json.loads(result.agent_config) == {"scrape": "true", "port": "9090", "path": ""}


def test_other_spellings_of_the_annotations_are_read_and_replaced() -> None:
    result = scrape_annotations(
        {"prometheus_io/scrape": "True", "prometheus.io_path": "/m", "x": "y"}, sidecar=True
    )
    assert result.annotations == {"x": "y", **AGENT}
    assert result.agent_config is not None
    assert json.loads(result.agent_config) == {"scrape": "True", "path": "/m", "port": ""}


@pytest.mark.parametrize(
    ("template", "sidecar"),
    [
        ({"prometheus.io/scrape": "true", "prometheus.io/port": "9090"}, False),
        ({"prometheus.istio.io/merge-metrics": "false", "prometheus.io/port": "9090"}, True),
        ({"prometheus.io/scrape": "false"}, True),
        ({"prometheus.io/port": "15020"}, True),  # already the agent's
    ],
)
def test_the_users_annotations_are_left_alone(template: dict[str, str], sidecar: bool) -> None:
    assert scrape_annotations(template, sidecar) == scrape_annotations(template, False)
    assert scrape_annotations(template, sidecar).annotations == template
    assert scrape_annotations(template, sidecar).agent_config is None


def test_a_merge_metrics_value_go_does_not_parse_means_the_default() -> None:
    result = scrape_annotations({"prometheus.istio.io/merge-metrics": "maybe"}, sidecar=True)
    assert result.annotations["prometheus.io/port"] == "15020"


def _pod(annotations: dict[str, str], inject: bool = True) -> Pod:
    return Pod(
        name="web-abc-x1",
        namespace="shop",
        deployment="web",
        template_hash="abc",
        labels={"app": "web"},
        annotations=annotations,
        spec=PodSpec.model_validate({"containers": [{"name": "app", "command": ["true"]}]}),
        inject=inject,
        ip="10.44.0.7",
        netns="m-shop.web-abc-x1",
    )


def _context(tmp_path: Path) -> PodContext:
    async def report(wait: bool) -> None:
        return None

    async def pod_token(namespace: str, pod: str, uid: str, service_account: str) -> str:
        raise AssertionError("not asked")

    return PodContext(
        network=None,  # type: ignore[arg-type]  # documents and argv do not use it
        state_dir=tmp_path,
        proxy_dir=tmp_path / "run",
        shim_dir=tmp_path / "shims",
        xds_socket=str(tmp_path / "xds.sock"),
        hosts_for=lambda ns: {},
        report=report,
        records=PodRecords(tmp_path / "records"),
        pod_token=pod_token,
    )


def test_the_reported_pod_and_the_agents_command_line(tmp_path: Path) -> None:
    ctx = _context(tmp_path)
    pod = _pod({"prometheus.io/scrape": "true", "prometheus.io/port": "9090"})
    view = pod_view(json.loads(json.dumps(pod.document("node", ctx))))
    assert {k: v for k, v in view.annotations.items() if k.startswith("prometheus")} == AGENT
    argv = pod._agent_argv(ctx)
    config = argv[argv.index("--prometheus-annotations") + 1]
    assert json.loads(config) == {"scrape": "true", "port": "9090", "path": ""}

    opted_out = _pod({"prometheus.istio.io/merge-metrics": "false", "prometheus.io/port": "9090"})
    annotations = opted_out.document("node", ctx)["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == "9090"
    assert "--prometheus-annotations" not in opted_out._agent_argv(ctx)

    plain = _pod({"prometheus.io/scrape": "true", "prometheus.io/port": "9090"}, inject=False)
    assert plain.document("node", ctx)["metadata"]["annotations"]["prometheus.io/port"] == "9090"
