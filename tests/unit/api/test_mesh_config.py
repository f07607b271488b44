"""MeshConfig from a file (`isthmus up --mesh-config`): Istio's field names, each
problem one line naming the file and the field, settings applied to the mesh config."""

from __future__ import annotations

import pytest

from isthmus.api.mesh_config import MeshConfigError, parse_mesh_config
from isthmus.model.snapshot import MeshConfig


def test_istios_fields_set_access_logs_and_tracing() -> None:
    text = (
        "accessLogFile: /dev/stdout\naccessLogEncoding: JSON\n"
        'accessLogFormat: \'{"code": "%RESPONSE_CODE%"}\'\n'
        "enableTracing: true\n"
        "defaultConfig:\n  tracing:\n    sampling: 100\n"
        "    zipkin: {address: jaeger.observability:9411}\n"
    )
    config = MeshConfig().with_file(parse_mesh_config(text, "mesh.yaml"))
    assert config.access_log_encoding == "JSON"
    assert config.access_log_format == '{"code": "%RESPONSE_CODE%"}'
    assert config.trace_sampling == 100
    assert config.zipkin_address == "jaeger.observability:9411"
    # What the file leaves out keeps isthmus's defaults.
    assert MeshConfig().with_file(parse_mesh_config("{}", "m.yaml")) == MeshConfig()


def test_the_seeds_dev_null_turns_access_logs_into_nothing() -> None:
    config = MeshConfig().with_file(parse_mesh_config("accessLogFile: /dev/null", "m.yaml"))
    assert config.access_log_file == "/dev/null"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        (
            "accessLogEncoding: XML",
            'm.yaml: accessLogEncoding: must be one of TEXT, JSON (got "XML")',
        ),
        (
            "defaultConfig: {tracing: {sampling: 101}}",
            "m.yaml: defaultConfig.tracing.sampling: must be at most 100.0 (got 101)",
        ),
        ("extensionProviders: []", "m.yaml: extensionProviders: not supported yet"),
        ("trustDomain: example.org", "m.yaml: trustDomain: set it with --trust-domain"),
        ("accessLogFile: 3", "m.yaml: accessLogFile: must be a string (got 3)"),
        (
            "defaultConfig: {tracing: {zipkin: {address: jaeger}}}",
            "m.yaml: defaultConfig.tracing.zipkin.address: must be HOST:PORT",
        ),
        (
            "accessLogEncoding: JSON\naccessLogFormat: '[1]'",
            "m.yaml: accessLogFormat: must be a JSON object of strings",
        ),
        ("- a\n- b", "m.yaml: must hold one MeshConfig mapping"),
        ("a: [", None),
    ],
)
def test_bad_input_is_one_line_per_problem_naming_the_field(text: str, error: str | None) -> None:
    with pytest.raises(MeshConfigError) as raised:
        parse_mesh_config(text, "m.yaml")
    lines = str(raised.value).splitlines()
    assert len(lines) == 1 and lines[0].startswith("m.yaml")
    if error is not None:
        assert lines[0] == error
