"""The merged metrics text: Envoy's istio families under Istio's names and unknown values,
the agent's and the application's families appended, and the whole valid 0.0.4 text."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from isthmus.agent.metrics_merge import (
    Family,
    format_value,
    istio_names,
    merge,
    parse_families,
    rename,
)
from isthmus.testing.exposition import problems

# As Envoy 1.40 writes it (checked against the binary; see the integration test).
ENVOY = (
    "# TYPE envoy_cluster_upstream_rq_total counter\n"
    'envoy_cluster_upstream_rq_total{envoy_cluster_name="xds-grpc"} 4\n'
    "# TYPE envoy_istio_requests_total counter\n"
    'envoy_istio_requests_total{reporter="source",source_workload="",source_app="-",'
    'response_code="503",response_flags="-",grpc_response_status=""} 1\n'
    'envoy_istio_requests_total{reporter="destination",source_workload="order",'
    'source_app="order",response_code="200",response_flags="",grpc_response_status="-"} 2\n'
    "# TYPE envoy_server_live gauge\n"
    "envoy_server_live{} 1\n"
    "# TYPE envoy_istio_request_duration_milliseconds histogram\n"
    'envoy_istio_request_duration_milliseconds_bucket{reporter="source",'
    'destination_version="",le="0.5"} 0\n'
    'envoy_istio_request_duration_milliseconds_bucket{reporter="source",'
    'destination_version="",le="+Inf"} 3\n'
    'envoy_istio_request_duration_milliseconds_sum{reporter="source",'
    'destination_version=""} 12.5\n'
    'envoy_istio_request_duration_milliseconds_count{reporter="source",'
    'destination_version=""} 3\n'
    "# TYPE envoy_http_downstream_rq_time histogram\n"
    'envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix="x",le="+Inf"} 3\n'
    'envoy_http_downstream_rq_time_sum{envoy_http_conn_manager_prefix="x"} 1\n'
    'envoy_http_downstream_rq_time_count{envoy_http_conn_manager_prefix="x"} 3\n'
)

EXPECTED = (
    "# TYPE envoy_cluster_upstream_rq_total counter\n"
    'envoy_cluster_upstream_rq_total{envoy_cluster_name="xds-grpc"} 4\n'
    "# TYPE istio_requests_total counter\n"
    'istio_requests_total{reporter="source",source_workload="unknown",source_app="unknown",'
    'response_code="503",response_flags="-",grpc_response_status=""} 1\n'
    'istio_requests_total{reporter="destination",source_workload="order",'
    'source_app="order",response_code="200",response_flags="",grpc_response_status="-"} 2\n'
    "# TYPE envoy_server_live gauge\n"
    "envoy_server_live{} 1\n"
    "# TYPE istio_request_duration_milliseconds histogram\n"
    'istio_request_duration_milliseconds_bucket{reporter="source",'
    'destination_version="unknown",le="0.5"} 0\n'
    'istio_request_duration_milliseconds_bucket{reporter="source",'
    'destination_version="unknown",le="+Inf"} 3\n'
    'istio_request_duration_milliseconds_sum{reporter="source",'
    'destination_version="unknown"} 12.5\n'
    'istio_request_duration_milliseconds_count{reporter="source",'
    'destination_version="unknown"} 3\n'
    "# TYPE envoy_http_downstream_rq_time histogram\n"
    'envoy_http_downstream_rq_time_bucket{envoy_http_conn_manager_prefix="x",le="+Inf"} 3\n'
    'envoy_http_downstream_rq_time_sum{envoy_http_conn_manager_prefix="x"} 1\n'
    'envoy_http_downstream_rq_time_count{envoy_http_conn_manager_prefix="x"} 3\n'
)


def renamed(text: str) -> str:
    return istio_names(text.encode()).decode()


def test_istio_families_get_istios_names_and_values() -> None:
    # response_flags and grpc_response_status keep Envoy's value: Istio's own words for
    # "none" and "not gRPC" are `-` and empty.
    assert renamed(ENVOY) == EXPECTED
    assert problems(EXPECTED) == []


def test_other_families_are_left_exactly_as_they_are() -> None:
    text = '# TYPE envoy_x counter\nenvoy_x{a="",b="-"} 1\n'
    assert renamed(text) == text
    assert renamed("") == ""


def test_only_label_values_change_never_a_value_that_merely_contains_them() -> None:
    text = (
        "# TYPE envoy_istio_requests_total counter\n"
        'envoy_istio_requests_total{request_path="/a=\\"-\\"",x_response_flags="",'
        'destination_app="a-b",destination_version="-x"} 1\n'
    )
    assert renamed(text) == (
        "# TYPE istio_requests_total counter\n"
        'istio_requests_total{request_path="/a=\\"-\\"",x_response_flags="unknown",'
        'destination_app="a-b",destination_version="-x"} 1\n'
    )


def test_the_last_family_and_a_text_without_final_newline() -> None:
    text = '# TYPE envoy_a counter\nenvoy_a 1\n# TYPE envoy_istio_b counter\nenvoy_istio_b{x=""} 2'
    assert renamed(text) == (
        '# TYPE envoy_a counter\nenvoy_a 1\n# TYPE istio_b counter\nistio_b{x="unknown"} 2'
    )


def test_an_istio_family_first_and_samples_without_a_type_line() -> None:
    assert renamed('# TYPE envoy_istio_a counter\nenvoy_istio_a{x="-"} 1\n') == (
        '# TYPE istio_a counter\nistio_a{x="unknown"} 1\n'
    )
    assert renamed('envoy_istio_a{x=""} 1\n') == 'envoy_istio_a{x=""} 1\n'  # not a family


def test_a_type_line_of_an_istio_family_inside_a_value_is_not_a_family() -> None:
    text = '# TYPE envoy_a counter\nenvoy_a{v="# TYPE envoy_istio_b counter"} 1\n'
    assert renamed(text) == text


def test_app_families_are_grouped_typed_and_stripped_of_openmetrics_extras() -> None:
    app = """\
# HELP http_requests_total Requests.
# TYPE http_requests_total counter
http_requests_total{code="200"} 7
# A comment
latency_seconds_bucket{le="0.1"} 1
# TYPE orders histogram
orders_bucket{le="+Inf"} 2 # {trace_id="abc"} 0.5 1700000000
orders_sum 3
orders_count 2
# UNIT orders seconds
http_requests_total{code="500"} 1
# TYPE info_thing info
info_thing{v="1"} 1
# EOF
"""
    families = {f.name: f for f in parse_families(app)}
    assert list(families) == [
        "http_requests_total",
        "latency_seconds_bucket",
        "orders",
        "info_thing",
    ]
    assert families["http_requests_total"].samples == [
        'http_requests_total{code="200"} 7',
        'http_requests_total{code="500"} 1',
    ]
    assert families["http_requests_total"].help == "Requests."
    assert families["orders"].samples == [
        'orders_bucket{le="+Inf"} 2',
        "orders_sum 3",
        "orders_count 2",
    ]
    assert families["info_thing"].type == "untyped"
    assert families["latency_seconds_bucket"].type == "untyped"
    merged = merge(b"", parse_families(app))
    assert problems(merged.body().decode()) == []


def test_merge_appends_in_order_and_drops_taken_families() -> None:
    agent = [
        Family("istio_agent_scrapes_total", "counter", "Scrapes.", ["istio_agent_scrapes_total 3"])
    ]
    app = parse_families(
        "# TYPE envoy_server_live gauge\nenvoy_server_live 0\n"
        "# TYPE istio_agent_scrapes_total counter\nistio_agent_scrapes_total 9\n"
        "app_up 1\n# TYPE empty gauge\n"
    )
    merged = merge(ENVOY.encode(), agent, app)
    assert merged.dropped == ("envoy_server_live", "istio_agent_scrapes_total")
    text = merged.body().decode()
    assert text == EXPECTED + (
        "# HELP istio_agent_scrapes_total Scrapes.\n"
        "# TYPE istio_agent_scrapes_total counter\n"
        "istio_agent_scrapes_total 3\n"
        "# TYPE app_up untyped\n"
        "app_up 1\n"
    )
    assert problems(text) == []
    assert rename(merged.body()).families >= {"istio_requests_total", "app_up"}


def test_merge_ends_envoys_text_with_a_newline() -> None:
    merged = merge(b"# TYPE envoy_a counter\nenvoy_a 1", [Family("b", samples=["b 2"])])
    assert merged.body() == b"# TYPE envoy_a counter\nenvoy_a 1\n# TYPE b untyped\nb 2\n"


@pytest.mark.parametrize(
    ("value", "text"),
    [(3, "3"), (0.25, "0.25"), (1e20, "1e+20"), (float("inf"), "+Inf"), (float("nan"), "NaN")],
)
def test_values_are_written_as_prometheus_reads_them(value: float, text: str) -> None:
    assert format_value(value) == text


_label_values = st.text(alphabet=st.sampled_from('ab-="\\ ,{}'), max_size=6)


@given(st.lists(st.tuples(_label_values, _label_values), min_size=1, max_size=5))
def test_any_escaped_values_keep_the_text_valid(values: list[tuple[str, str]]) -> None:
    def escaped(value: str) -> str:
        return value.replace("\\", "\\\\").replace('"', '\\"')

    lines = ["# TYPE envoy_istio_requests_total counter"]
    for index, (first, second) in enumerate(values):
        lines.append(
            f'envoy_istio_requests_total{{n="{index}",a="{escaped(first)}",'
            f'response_flags="{escaped(second)}"}} 1'
        )
    text = renamed("\n".join(lines) + "\n")
    assert problems(text) == []
    for index, (first, second) in enumerate(values):
        want_a = "unknown" if first in ("", "-") else escaped(first)
        assert f'{{n="{index}",a="{want_a}",response_flags="{escaped(second)}"}} 1' in text


def test_lines_that_are_not_samples_are_left_out_and_named() -> None:
    rejected: list[str] = []
    families = parse_families(
        '{"status": "ok"}\n<html>\nup 1\nbad{x="1" 2\nworse one\n# TYPE 9lives counter\n'
        'ok{a="x",} 3 1700000000000\n',
        rejected,
    )
    assert [(f.name, f.samples) for f in families] == [
        ("up", ["up 1"]),
        ("ok", ['ok{a="x",} 3 1700000000000']),
    ]
    assert rejected == [
        '{"status": "ok"}',
        "<html>",
        'bad{x="1" 2',
        "worse one",
        "# TYPE 9lives counter",
    ]
    assert problems(merge(b"", families).body().decode()) == []
