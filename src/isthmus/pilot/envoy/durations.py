"""timedelta -> google.protobuf.Duration."""

from __future__ import annotations

from datetime import timedelta

from google.protobuf import duration_pb2


def duration(value: timedelta) -> duration_pb2.Duration:
    out = duration_pb2.Duration()
    out.FromTimedelta(value)
    return out
