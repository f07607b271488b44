"""`isthmus traces`: recent traces from isthmusd's Zipkin collector, or one as a tree.

Reads Zipkin's query API, which isthmusd answers on its API socket: a list of traces
(newest first: trace id, root service and operation, span count, duration, start) or,
given a trace id, its spans as a tree with each span's service, name, kind, duration,
offset from the trace's start and HTTP status. `-o json` prints Zipkin's own JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import click

from isthmus.cli.context import CliContext, pass_cli
from isthmus.cli.errors import UserError
from isthmus.cli.waiting import parse_duration, timeout_option
from isthmus.daemon.client import DaemonError
from isthmus.tracing.view import span_tree, summarize, trace_start, walk

JsonSpan = Mapping[str, Any]


@click.command("traces")
@click.argument("trace_id", required=False)
@click.option("--service", help="Only traces with a span of this service (e.g. order.production).")
@click.option(
    "--min-duration",
    metavar="DURATION",
    help="Only traces with a span at least this long (of --service's spans, if given): 100ms, 2s.",
)
@click.option(
    "--limit", type=click.IntRange(min=1), default=10, show_default=True, help="Most traces."
)
@click.option("-o", "--output", type=click.Choice(["json"]), help="Print Zipkin's JSON.")
@timeout_option
@pass_cli
def traces_command(
    cli: CliContext,
    trace_id: str | None,
    service: str | None,
    min_duration: str | None,
    limit: int,
    output: str | None,
) -> None:
    """List recent traces, or show one trace as a tree with timings."""
    if trace_id is not None:
        if service is not None or min_duration is not None:
            raise UserError("--service and --min-duration filter the list; not with a trace id")
        _show_trace(cli, trace_id.lower(), output)
        return
    params = {"limit": str(limit)}
    if service:
        params["serviceName"] = service
    if min_duration is not None:
        try:
            params["minDuration"] = str(max(1, round(parse_duration(min_duration) * 1e6)))
        except ValueError as exc:
            raise UserError(f"--min-duration: {exc}") from None
    with cli.client() as client:
        traces = client.zipkin("/api/v2/traces", params)
    if output == "json":
        click.echo(json.dumps(traces, indent=4))
    elif not traces:
        click.echo("No traces found.", err=True)
    else:
        click.echo(trace_table(traces))


def _show_trace(cli: CliContext, trace_id: str, output: str | None) -> None:
    with cli.client() as client:
        try:
            spans = client.zipkin(f"/api/v2/trace/{trace_id}")
        except DaemonError as exc:
            if exc.status == 404:
                raise UserError(f"trace {trace_id} not found") from None
            raise
    if output == "json":
        click.echo(json.dumps(spans, indent=4))
    else:
        click.echo(span_table(spans))


def trace_table(traces: Sequence[Sequence[JsonSpan]]) -> str:
    """One line per trace: id, root service and operation, spans, duration, start."""
    rows = [["TRACE ID", "SERVICE", "OPERATION", "SPANS", "DURATION", "START"]]
    for trace in traces:
        summary = summarize(trace)
        rows.append(
            [
                summary.trace_id,
                summary.root_service or "-",
                summary.root_name or "-",
                str(summary.span_count),
                format_micros(summary.duration),
                _utc(summary.start),
            ]
        )
    return _columns(rows)


def span_table(spans: Sequence[JsonSpan]) -> str:
    """A heading line, then the trace's tree: one line per span with its timings."""
    summary = summarize(spans)
    start = trace_start(spans)
    rows = [["SERVICE", "NAME", "KIND", "DURATION", "OFFSET", "STATUS"]]
    for prefix, node in walk(span_tree(spans)):
        span = node.span
        timestamp = span.get("timestamp")
        rows.append(
            [
                prefix + str(span.get("localEndpoint", {}).get("serviceName", "-")),
                str(span.get("name", "-")),
                str(span.get("kind", "-")),
                format_micros(span["duration"]) if "duration" in span else "-",
                f"+{format_micros(timestamp - start)}" if isinstance(timestamp, int) else "-",
                _status(span.get("tags", {})),
            ]
        )
    heading = (
        f"trace {summary.trace_id}: {summary.span_count} spans, "
        f"{format_micros(summary.duration)}, started {_utc(summary.start)}"
    )
    return heading + "\n" + _columns(rows)


def _status(tags: Mapping[str, str]) -> str:
    status = tags.get("http.status_code", "")
    if "error" in tags:
        return f"{status} error".strip()
    return status or "-"


def format_micros(micros: int) -> str:
    """`850us`, `12.34ms`, `1.50s`: a span's duration at a glance."""
    if micros < 1000:
        return f"{micros}us"
    if micros < 1_000_000:
        return f"{micros / 1000:.2f}ms"
    return f"{micros / 1_000_000:.2f}s"


def _utc(micros: int) -> str:
    if not micros:
        return "-"
    moment = datetime.fromtimestamp(micros / 1_000_000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _columns(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )
