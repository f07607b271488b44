"""`isthmus top`'s tables, as a script reads them, and its refusals of bad options."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from isthmus.cli.main import cli
from isthmus.cli.top import render
from isthmus.cli.top_stats import DURATION_BUCKETS, REQUESTS, Scrape

SERVICE = "shop.production.svc.cluster.local"


def _requests(reporter: str, code: str, value: float, **labels: str) -> tuple:
    key = {"reporter": reporter, "destination_service": SERVICE, "response_code": code, **labels}
    return (REQUESTS, tuple(sorted(key.items()))), value


def _bucket(le: str, value: float) -> tuple:
    labels = {"reporter": "destination", "destination_service": SERVICE, "le": le}
    return (DURATION_BUCKETS, tuple(sorted(labels.items()))), value


def test_tables_per_service_and_per_edge() -> None:
    edge = {"source_workload": "client", "source_workload_namespace": "production"}
    before = {
        "production/shop": Scrape(0.0, dict([_requests("destination", "200", 0)])),
        "production/client": Scrape(0.0, dict([_requests("source", "503", 0, **edge)])),
        "production/gone": Scrape(0.0, {}),  # not read the second time: left out
    }
    after = {
        "production/shop": Scrape(
            4.0,
            dict(
                [
                    _requests("destination", "200", 36),
                    _requests("destination", "500", 4),
                    _bucket("10", 20),
                    _bucket("100", 40),
                    _bucket("+Inf", 40),
                ]
            ),
        ),
        "production/client": Scrape(2.0, dict([_requests("source", "503", 3, **edge)])),
    }
    console = Console(width=200, record=True)
    console.print(render(before, after, "namespace production", 4.0))
    rows = [line.split() for line in console.export_text().splitlines()]
    heading = "isthmus top: namespace production, 2 sidecar(s), last 4.0s"
    assert rows[0] == heading.split()
    # 40 requests in 4 s, 4 of them 500. Bucket rates 5/s (le 10), 10/s (le 100), 10/s:
    # p50 is rank 5, at the top of (0, 10]; p99 is rank 9.9, 10 + 90 * 4.9 / 5 = 98.2.
    assert [SERVICE, "10.0", "10.0%", "10.0", "98.2"] in rows
    assert ["client.production", SERVICE, "1.5", "100.0%", "-", "-"] in rows


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["top", "-n", "a", "-A"], "use either -n/--namespace or -A/--all-namespaces"),
        (["top", "--interval", "fast"], '--interval: "fast" is not a duration'),
        (["top", "--interval", "500ms"], "--interval 500ms is shorter than 1s"),
    ],
)
def test_bad_options_are_one_line_and_exit_1(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, ["--home", str(tmp_path), *args])
    assert result.exit_code == 1
    assert message in result.output
