"""Istio HTTPRetry -> Envoy RetryPolicy, including Istio's default policy.

Istio's defaults (pilot's retry.DefaultPolicy): when a route sets no `retries`, Envoy
retries twice on connect-failure, refused-stream, unavailable, cancelled and 503
(retriable-status-codes), never on the same host again (previous_hosts predicate),
with up to 5 host selection attempts. `attempts: 0` disables retries. A `retryOn` given by
the user replaces the conditions; bare status codes become retriable_status_codes.
"""

from __future__ import annotations

from http import HTTPStatus

from envoy.config.route.v3 import route_components_pb2 as rc
from envoy.extensions.retry.host.previous_hosts.v3 import previous_hosts_pb2
from google.protobuf import any_pb2, wrappers_pb2

from isthmus.api.networking import HTTPRetry
from isthmus.pilot.envoy.durations import duration

DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
DEFAULT_ATTEMPTS = 2
DEFAULT_RETRIABLE_STATUS_CODES = (503,)


def _previous_hosts() -> rc.RetryPolicy.RetryHostPredicate:
    packed = any_pb2.Any()
    packed.Pack(previous_hosts_pb2.PreviousHostsPredicate())
    return rc.RetryPolicy.RetryHostPredicate(
        name="envoy.retry_host_predicates.previous_hosts", typed_config=packed
    )


_STATUS_CODES = frozenset(int(status) for status in HTTPStatus)


def _is_status_code(token: str) -> bool:
    """Istio takes a number for a status code only if it is a known HTTP status."""
    return token.isdigit() and int(token) in _STATUS_CODES


def default_retry_policy(consistent_hash: bool = False) -> rc.RetryPolicy:
    """Istio's default; with consistent hashing retries stay on the hashed host."""
    policy = rc.RetryPolicy(
        retry_on=DEFAULT_RETRY_ON,
        num_retries=wrappers_pb2.UInt32Value(value=DEFAULT_ATTEMPTS),
        retriable_status_codes=list(DEFAULT_RETRIABLE_STATUS_CODES),
        host_selection_retry_max_attempts=5,
    )
    if not consistent_hash:
        policy.retry_host_predicate.append(_previous_hosts())
    return policy


def parse_retry_on(retry_on: str) -> tuple[str, list[int]]:
    """Split Istio's retryOn into Envoy's retry_on tokens and retriable status codes."""
    tokens: list[str] = []
    codes: list[int] = []
    for raw in retry_on.split(","):
        token = raw.strip()
        if not token:
            continue
        if _is_status_code(token):
            codes.append(int(token))
        elif token not in tokens:
            tokens.append(token)
    if codes and "retriable-status-codes" not in tokens:
        tokens.append("retriable-status-codes")
    return ",".join(tokens), codes


def retry_policy(retries: HTTPRetry | None, consistent_hash: bool = False) -> rc.RetryPolicy | None:
    if retries is None:
        return default_retry_policy(consistent_hash)
    if retries.attempts <= 0:
        return None
    policy = default_retry_policy(consistent_hash)
    policy.num_retries.value = retries.attempts
    if retries.retry_on:
        policy.retry_on, codes = parse_retry_on(retries.retry_on)
        del policy.retriable_status_codes[:]
        policy.retriable_status_codes.extend(codes)
    if retries.per_try_timeout is not None:
        policy.per_try_timeout.CopyFrom(duration(retries.per_try_timeout))
    return policy
