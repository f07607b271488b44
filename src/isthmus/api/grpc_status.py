"""gRPC status names as Istio spells them in `fault.abort.grpcStatus`, and their codes.

Istio accepts exactly the names of grpc-go's codes (pkg/util/grpc/codes.go,
SupportedGRPCStatus); validation checks the name here and pilot sends the code to Envoy.
"""

from __future__ import annotations

from types import MappingProxyType

GRPC_STATUS_CODES = MappingProxyType(
    {
        "OK": 0,
        "CANCELLED": 1,
        "UNKNOWN": 2,
        "INVALID_ARGUMENT": 3,
        "DEADLINE_EXCEEDED": 4,
        "NOT_FOUND": 5,
        "ALREADY_EXISTS": 6,
        "PERMISSION_DENIED": 7,
        "RESOURCE_EXHAUSTED": 8,
        "FAILED_PRECONDITION": 9,
        "ABORTED": 10,
        "OUT_OF_RANGE": 11,
        "UNIMPLEMENTED": 12,
        "INTERNAL": 13,
        "UNAVAILABLE": 14,
        "DATA_LOSS": 15,
        "UNAUTHENTICATED": 16,
    }
)
