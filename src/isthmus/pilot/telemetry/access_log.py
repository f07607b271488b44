"""Access logs as Istio writes them: Envoy's file access logger with Istio's default text
format or its JSON form (MeshConfig accessLogFile, accessLogEncoding, accessLogFormat).

The sidecar's `/dev/stdout` is the istio-proxy container's output (`isthmus logs POD -c
istio-proxy`), as in Istio. A request crosses two sidecars, and both lines carry the same
x-request-id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from envoy.config.accesslog.v3 import accesslog_pb2
from envoy.config.core.v3 import substitution_format_string_pb2 as sfs
from envoy.extensions.access_loggers.file.v3 import file_pb2

from isthmus.pilot.envoy.typed import pack

FILE_ACCESS_LOGGER = "envoy.access_loggers.file"
STDOUT = "/dev/stdout"

# Istio's default text format (EnvoyTextLogFormat), one line per request or connection.
ISTIO_TEXT_FORMAT = (
    '[%START_TIME%] "%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%" '
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% "
    '%CONNECTION_TERMINATION_DETAILS% "%UPSTREAM_TRANSPORT_FAILURE_REASON%" '
    "%BYTES_RECEIVED% %BYTES_SENT% %DURATION% %RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% "
    '"%REQ(X-FORWARDED-FOR)%" "%REQ(USER-AGENT)%" "%REQ(X-REQUEST-ID)%" '
    '"%REQ(:AUTHORITY)%" "%UPSTREAM_HOST%" %UPSTREAM_CLUSTER_RAW% '
    "%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% "
    "%REQUESTED_SERVER_NAME% %ROUTE_NAME%\n"
)
# Istio's default JSON format (EnvoyJSONLogFormatIstio): the same fields, named.
ISTIO_JSON_FORMAT = {
    "start_time": "%START_TIME%",
    "method": "%REQ(:METHOD)%",
    "path": "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%",
    "protocol": "%PROTOCOL%",
    "response_code": "%RESPONSE_CODE%",
    "response_flags": "%RESPONSE_FLAGS%",
    "response_code_details": "%RESPONSE_CODE_DETAILS%",
    "connection_termination_details": "%CONNECTION_TERMINATION_DETAILS%",
    "upstream_transport_failure_reason": "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
    "bytes_received": "%BYTES_RECEIVED%",
    "bytes_sent": "%BYTES_SENT%",
    "duration": "%DURATION%",
    "upstream_service_time": "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
    "x_forwarded_for": "%REQ(X-FORWARDED-FOR)%",
    "user_agent": "%REQ(USER-AGENT)%",
    "request_id": "%REQ(X-REQUEST-ID)%",
    "authority": "%REQ(:AUTHORITY)%",
    "upstream_host": "%UPSTREAM_HOST%",
    "upstream_cluster": "%UPSTREAM_CLUSTER_RAW%",
    "upstream_local_address": "%UPSTREAM_LOCAL_ADDRESS%",
    "downstream_local_address": "%DOWNSTREAM_LOCAL_ADDRESS%",
    "downstream_remote_address": "%DOWNSTREAM_REMOTE_ADDRESS%",
    "requested_server_name": "%REQUESTED_SERVER_NAME%",
    "route_name": "%ROUTE_NAME%",
}


@dataclass(frozen=True)
class AccessLogSettings:
    """Where and how a proxy writes access logs. `format` empty: Istio's default for the
    encoding; otherwise, as in Istio, a text format string (TEXT) or a JSON object of
    format strings (JSON)."""

    path: str = STDOUT
    encoding: str = "TEXT"
    format: str = ""


def file_access_log(settings: AccessLogSettings) -> accesslog_pb2.AccessLog:
    log_format = sfs.SubstitutionFormatString()
    if settings.encoding == "JSON":
        if settings.format:
            log_format.json_format.update(json.loads(settings.format))
        else:
            log_format.json_format.update(ISTIO_JSON_FORMAT)
    else:
        text = settings.format or ISTIO_TEXT_FORMAT
        log_format.text_format_source.inline_string = text if text.endswith("\n") else text + "\n"
    config = file_pb2.FileAccessLog(path=settings.path, log_format=log_format)
    return accesslog_pb2.AccessLog(name=FILE_ACCESS_LOGGER, typed_config=pack(config))
