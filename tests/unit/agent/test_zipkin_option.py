"""--zipkin-socket turns span reporting on: the agent then splices its ZIPKIN socket to it."""

from __future__ import annotations

from isthmus.agent.options import parse_options

REQUIRED = [
    *("--pod", "web-7d9f-x2k8q", "--namespace", "shop", "--ip", "10.44.0.9"),
    *("--xds-socket", "/root/.isthmus/xds.sock", "--workdir", "/run/isthmus/m/shop.web"),
]


def test_without_the_flag_there_is_no_tracing_socket() -> None:
    assert parse_options(REQUIRED, environ={}).zipkin_socket is None


def test_the_flag_names_the_collectors_socket() -> None:
    options = parse_options([*REQUIRED, "--zipkin-socket", "/root/.isthmus/zipkin.sock"], {})
    assert options.zipkin_socket == "/root/.isthmus/zipkin.sock"
