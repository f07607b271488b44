"""DestinationRule outlierDetection -> Envoy outlier_detection and the panic threshold.

Istio's mapping: success-rate ejection is switched off; each consecutive-error kind that
is set is enforced at 100% (0% when set to 0, which disables it); the deprecated
`consecutiveErrors`, which Istio ignores, is refused by the api checks. minHealthPercent
becomes the healthy panic threshold, which Istio sets even when it is 0 (Envoy would
otherwise use 50%) so few-pod services do not send traffic to ejected hosts.
"""

from __future__ import annotations

from envoy.config.cluster.v3 import outlier_detection_pb2

from isthmus.api.networking import OutlierDetection
from isthmus.pilot.envoy.cluster import Cluster, duration

ENFORCED = 100


def outlier_detection(settings: OutlierDetection) -> outlier_detection_pb2.OutlierDetection:
    out = outlier_detection_pb2.OutlierDetection()
    out.enforcing_success_rate.value = 0
    if settings.consecutive_5xx_errors is not None:
        out.consecutive_5xx.value = settings.consecutive_5xx_errors
        out.enforcing_consecutive_5xx.value = _enforcing(settings.consecutive_5xx_errors)
    if settings.consecutive_gateway_errors is not None:
        out.consecutive_gateway_failure.value = settings.consecutive_gateway_errors
        out.enforcing_consecutive_gateway_failure.value = _enforcing(
            settings.consecutive_gateway_errors
        )
    if settings.interval is not None:
        out.interval.CopyFrom(duration(settings.interval))
    if settings.base_ejection_time is not None:
        out.base_ejection_time.CopyFrom(duration(settings.base_ejection_time))
    if settings.max_ejection_percent:
        out.max_ejection_percent.value = settings.max_ejection_percent
    if settings.split_external_local_origin_errors:
        out.split_external_local_origin_errors = True
        if settings.consecutive_local_origin_failures:
            out.consecutive_local_origin_failure.value = settings.consecutive_local_origin_failures
            out.enforcing_consecutive_local_origin_failure.value = ENFORCED
        out.enforcing_local_origin_success_rate.value = 0
    return out


def _enforcing(threshold: int) -> int:
    return ENFORCED if threshold > 0 else 0


def apply_outlier_detection(cluster: Cluster, settings: OutlierDetection | None) -> None:
    """Set outlier detection and, with it, the healthy panic threshold."""
    if settings is None:
        return
    cluster.outlier_detection.CopyFrom(outlier_detection(settings))
    panic = cluster.common_lb_config.healthy_panic_threshold
    panic.SetInParent()
    panic.value = float(settings.min_health_percent or 0)
