"""`isthmus traces` against a real isthmusd: spans posted to its collector socket (as a
sidecar's Envoy posts them) are listed, filtered, and printed as a tree with timings."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from isthmus.cli.main import cli
from isthmus.testing.daemon import DaemonProcess

# A minute ago, in epoch microseconds: within the API's default lookback (a day).
T0 = (int(time.time()) - 60) * 1_000_000
SLOW = "5a1e00000000000000000000000000a1"
FAST = "fa57000000000000000000000000000b"


def span(trace: str, id: str, service: str, name: str, kind: str, **fields: Any) -> dict[str, Any]:
    return {
        "traceId": trace,
        "id": id,
        "kind": kind,
        "name": name,
        "localEndpoint": {"serviceName": service},
        **fields,
    }


# order -> inventory (300 ms, 200) and order -> cart (503), Istio style: own span ids.
SLOW_TRACE = [
    span(SLOW, "0000000000000001", "order.production", "egress inventory", "CLIENT",
         timestamp=T0, duration=310_000, tags={"http.status_code": "200"}),
    span(SLOW, "0000000000000002", "inventory.production", "ingress", "SERVER",
         parentId="0000000000000001", timestamp=T0 + 2_000, duration=300_000,
         tags={"http.status_code": "200"}),
    span(SLOW, "0000000000000003", "order.production", "egress cart", "CLIENT",
         timestamp=T0 + 400, duration=1_500, parentId="0000000000000001",
         tags={"http.status_code": "503", "error": "true"}),
]  # fmt: skip
FAST_TRACE = [
    span(FAST, "00000000000000f1", "cart.production", "ingress", "SERVER",
         timestamp=T0 + 5_000_000, duration=800, tags={"http.status_code": "200"}),
]  # fmt: skip


@pytest.fixture(scope="module")
def daemon() -> Iterator[DaemonProcess]:
    workdir = Path(tempfile.mkdtemp(prefix="isthmus-tr-"))
    daemon = DaemonProcess(workdir / "home").start()
    try:
        # Posted to the collector's own socket, as the agents splice Envoy's reports.
        with httpx.Client(
            transport=httpx.HTTPTransport(uds=str(daemon.zipkin_socket)), base_url="http://zipkin"
        ) as collector:
            for batch in (SLOW_TRACE[:2], SLOW_TRACE[2:], FAST_TRACE):
                response = collector.post("/api/v2/spans", json=batch)
                assert response.status_code == 202, response.text
        yield daemon
    finally:
        daemon.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def traces(daemon: DaemonProcess, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--home", str(daemon.home), "traces", *args])


def rows(text: str) -> list[list[str]]:
    """Table lines split on the CLI's column gaps (three spaces or more)."""
    return [re.split(r" {3,}", line.rstrip()) for line in text.splitlines()]


def utc(micros: int) -> str:
    moment = datetime.fromtimestamp(micros / 1e6, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def test_recent_traces_are_listed_newest_first(daemon: DaemonProcess) -> None:
    result = traces(daemon)
    assert result.exit_code == 0, result.output
    assert rows(result.stdout) == [
        ["TRACE ID", "SERVICE", "OPERATION", "SPANS", "DURATION", "START"],
        [FAST, "cart.production", "ingress", "1", "800us", utc(T0 + 5_000_000)],
        [SLOW, "order.production", "egress inventory", "3", "310.00ms", utc(T0)],
    ]


@pytest.mark.parametrize(
    ("args", "found"),
    [
        (["--service", "inventory.production"], [SLOW]),
        (["--service", "Cart.Production"], [FAST]),
        (["--min-duration", "200ms"], [SLOW]),
        (["--min-duration", "0.3s", "--service", "order.production"], [SLOW]),
        (["--min-duration", "311ms"], []),
        (["--min-duration", "1ms", "--service", "cart.production"], []),
        (["--limit", "1"], [FAST]),
    ],
)
def test_the_list_is_filtered_as_zipkin_filters(
    daemon: DaemonProcess, args: list[str], found: list[str]
) -> None:
    result = traces(daemon, *args)
    assert result.exit_code == 0, result.output
    assert [row[0] for row in rows(result.stdout)[1:]] == found
    if not found:
        assert result.stderr.strip() == "No traces found."


def test_one_trace_is_a_tree_with_timings_from_its_start(daemon: DaemonProcess) -> None:
    result = traces(daemon, SLOW.upper())
    assert result.exit_code == 0, result.output
    heading, *table = result.stdout.splitlines()
    assert heading == f"trace {SLOW}: 3 spans, 310.00ms, started {utc(T0)}"
    assert rows("\n".join(table)) == [
        ["SERVICE", "NAME", "KIND", "DURATION", "OFFSET", "STATUS"],
        ["order.production", "egress inventory", "CLIENT", "310.00ms", "+0us", "200"],
        ["├─ order.production", "egress cart", "CLIENT", "1.50ms", "+400us", "503 error"],
        ["└─ inventory.production", "ingress", "SERVER", "300.00ms", "+2.00ms", "200"],
    ]


def test_json_is_zipkins_own(daemon: DaemonProcess) -> None:
    listed = traces(daemon, "-o", "json")
    assert [[s["id"] for s in t] for t in json.loads(listed.stdout)] == [
        ["00000000000000f1"],
        ["0000000000000001", "0000000000000002", "0000000000000003"],
    ]
    one = traces(daemon, FAST, "-o", "json")
    assert json.loads(one.stdout) == FAST_TRACE


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["c" * 32], f"error: trace {'c' * 32} not found"),
        (["xyz"], "error: traceId 'xyz' is not lower-hex"),
        ([SLOW, "--service", "cart.production"], "not with a trace id"),
        (["--min-duration", "soon"], 'error: --min-duration: "soon" is not a duration'),
        (["--limit", "0"], "error: Invalid value for '--limit'"),
    ],
)
def test_mistakes_are_one_line_and_exit_1(
    daemon: DaemonProcess, args: list[str], message: str
) -> None:
    result = traces(daemon, *args)
    assert result.exit_code == 1
    assert message in result.stderr
    assert "Traceback" not in result.output


def test_without_isthmusd_traces_says_it_is_not_running(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["--home", str(tmp_path), "traces"])
    assert result.exit_code == 1
    assert "isthmusd is not running" in result.stderr
