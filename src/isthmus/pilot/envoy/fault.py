"""Istio HTTPFaultInjection -> the per-route config of Envoy's fault filter."""

from __future__ import annotations

from envoy.extensions.filters.common.fault.v3 import fault_pb2 as common_fault
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.type.v3 import percent_pb2

from isthmus.api.networking import HTTPFaultInjection, Percent
from isthmus.pilot.envoy.durations import duration

FAULT_FILTER = "envoy.filters.http.fault"


def fractional_percent(
    percentage: Percent | None, legacy_percent: int | None
) -> percent_pb2.FractionalPercent:
    """Istio: `percentage.value` (double, 0..100) in millionths; legacy `percent` in
    hundredths; neither means 100%."""
    if percentage is not None:
        return percent_pb2.FractionalPercent(
            numerator=round(percentage.value * 10_000),
            denominator=percent_pb2.FractionalPercent.MILLION,
        )
    if legacy_percent is not None:
        return percent_pb2.FractionalPercent(
            numerator=legacy_percent, denominator=percent_pb2.FractionalPercent.HUNDRED
        )
    return percent_pb2.FractionalPercent(
        numerator=100, denominator=percent_pb2.FractionalPercent.HUNDRED
    )


def http_fault(fault: HTTPFaultInjection) -> fault_pb2.HTTPFault | None:
    out = fault_pb2.HTTPFault()
    used = False
    if fault.delay is not None and fault.delay.fixed_delay is not None:
        out.delay.CopyFrom(
            common_fault.FaultDelay(
                fixed_delay=duration(fault.delay.fixed_delay),
                percentage=fractional_percent(fault.delay.percentage, fault.delay.percent),
            )
        )
        used = True
    if fault.abort is not None and fault.abort.http_status is not None:
        out.abort.CopyFrom(
            fault_pb2.FaultAbort(
                http_status=fault.abort.http_status,
                percentage=fractional_percent(fault.abort.percentage, None),
            )
        )
        used = True
    return out if used else None
