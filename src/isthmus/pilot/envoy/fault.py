"""Istio HTTPFaultInjection -> the per-route config of Envoy's fault filter.

An abort is an HTTP status or a gRPC status (by name, as Istio's TranslateFault maps it);
Envoy's fault filter has no HTTP/2 error abort, so validation refuses `http2Error`.
"""

from __future__ import annotations

from envoy.extensions.filters.common.fault.v3 import fault_pb2 as common_fault
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.type.v3 import percent_pb2

from isthmus.api.grpc_status import GRPC_STATUS_CODES
from isthmus.api.networking import HTTPFaultInjection, HTTPFaultInjection_Abort, Percent
from isthmus.pilot.envoy.durations import duration

FAULT_FILTER = "envoy.filters.http.fault"


def fractional_percent(percentage: Percent) -> percent_pb2.FractionalPercent:
    """Istio's `percentage.value` (a double, 0..100) in millionths."""
    return percent_pb2.FractionalPercent(
        numerator=round(percentage.value * 10_000),
        denominator=percent_pb2.FractionalPercent.MILLION,
    )


def integer_percent(percent: int) -> percent_pb2.FractionalPercent:
    """Istio's legacy integer `percent` (0..100) in hundredths."""
    return percent_pb2.FractionalPercent(
        numerator=percent, denominator=percent_pb2.FractionalPercent.HUNDRED
    )


def http_fault(fault: HTTPFaultInjection) -> fault_pb2.HTTPFault | None:
    """As Istio's TranslateFault: without `percentage` (or the legacy `percent` of a delay)
    no request is delayed or aborted — the API documents "if left unspecified, no request
    will be delayed", so an unset percentage is 0%, never 100%."""
    out = fault_pb2.HTTPFault()
    used = False
    delay = fault.delay
    if delay is not None and delay.fixed_delay is not None:
        out.delay.CopyFrom(
            common_fault.FaultDelay(
                fixed_delay=duration(delay.fixed_delay),
                percentage=(
                    fractional_percent(delay.percentage)
                    if delay.percentage is not None
                    else integer_percent(delay.percent or 0)
                ),
            )
        )
        used = True
    abort = _abort(fault.abort) if fault.abort is not None else None
    if abort is not None:
        out.abort.CopyFrom(abort)
        used = True
    return out if used else None


def _abort(abort: HTTPFaultInjection_Abort) -> fault_pb2.FaultAbort | None:
    """An HTTP status, or a gRPC status name as its code: Envoy answers a gRPC request
    with HTTP 200 and that grpc-status (validation admitted only known names)."""
    out = fault_pb2.FaultAbort()
    if abort.http_status is not None:
        out.http_status = abort.http_status
    elif abort.grpc_status is not None:
        out.grpc_status = GRPC_STATUS_CODES[abort.grpc_status]
    else:
        return None
    if abort.percentage is not None:
        out.percentage.CopyFrom(fractional_percent(abort.percentage))
    return out
