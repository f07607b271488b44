"""`isthmus proxy-config secret POD`: the certificates a sidecar's Envoy holds (istioctl's
proxy-config secret), read from Envoy's own config dump, never from the agent's files.

Envoy redacts private keys in its dump; the certificates are parsed here for their serial,
SPIFFE id and validity, so an operator sees what each new TLS handshake presents.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from cryptography import x509

from isthmus.agent.certificate_manager import STATUS_FILE_NAME
from isthmus.cli.lifecycle import read_settings
from isthmus.home import MeshHome
from isthmus.node.main import proxy_dir

Body = dict[str, Any]

SECRET_HEADERS = [
    "RESOURCE NAME",
    "TYPE",
    "STATUS",
    "VALID CERT",
    "SERIAL NUMBER",
    "SAN",
    "NOT BEFORE",
    "NOT AFTER",
    "LAST UPDATED",
    "NEXT ROTATION",
]


_SECTIONS = (("ACTIVE", "dynamic_active_secrets"), ("WARMING", "dynamic_warming_secrets"))


def dumped_secrets(dump: Body) -> list[Body]:
    """Active and warming dynamic secrets of Envoy's SecretsConfigDump."""
    out: list[Body] = []
    for config in dump.get("configs", []):
        if not str(config.get("@type", "")).endswith(".SecretsConfigDump"):
            continue
        for state, key in (
            ("ACTIVE", "dynamic_active_secrets"),
            ("WARMING", "dynamic_warming_secrets"),
        ):
            out.extend({**s, "status": state} for s in config.get(key, []))
    return out


def _pem(data: Body) -> bytes:
    inline = data.get("inline_bytes")
    if inline is not None:
        return base64.b64decode(inline)
    return str(data.get("inline_string", "")).encode()


def _first_certificate(secret: Body) -> tuple[str, x509.Certificate | None]:
    body = secret.get("secret", {})
    if "tls_certificate" in body:
        pem = _pem(body["tls_certificate"].get("certificate_chain", {}))
        kind = "Cert Chain"
    elif "validation_context" in body:
        pem = _pem(body["validation_context"].get("trusted_ca", {}))
        kind = "CA"
    else:
        return "Unknown", None
    try:
        return kind, x509.load_pem_x509_certificates(pem)[0]
    except (ValueError, IndexError):
        return kind, None


def _time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def secret_rows(secrets: Sequence[Body]) -> list[list[str]]:
    rows = []
    now = datetime.now(UTC)
    for secret in secrets:
        kind, cert = _first_certificate(secret)
        if cert is None:
            rows.append([str(secret.get("name", "")), kind, secret["status"], "false"] + ["-"] * 6)
            continue
        valid = cert.not_valid_before_utc <= now <= cert.not_valid_after_utc
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            uris = ",".join(san.get_values_for_type(x509.UniformResourceIdentifier)) or "-"
        except x509.ExtensionNotFound:
            uris = "-"
        rows.append(
            [
                str(secret.get("name", "")),
                kind,
                secret["status"],
                "true" if valid else "false",
                format(cert.serial_number, "x"),
                uris,
                _time(cert.not_valid_before_utc),
                _time(cert.not_valid_after_utc),
                str(secret.get("last_updated", "-")),
                str(secret.get("next_rotation") or "-"),
            ]
        )
    return rows


def agent_certificate_status(home: MeshHome, pod: dict[str, Any]) -> dict[str, Any]:
    """The pod agent's certificate status file (no key material in it): when it renews.
    Empty when the mesh's settings or the file are not there (a sidecar without mTLS)."""
    settings = read_settings(home)
    if settings is None:
        return {}
    path = proxy_dir(settings.mesh) / f"{pod['namespace']}.{pod['name']}" / STATUS_FILE_NAME
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def with_rotation(secrets: list[Body], status: dict[str, Any]) -> list[Body]:
    """The workload certificate's row gains the agent's next rotation, when it is for the
    certificate Envoy holds (same serial)."""
    out = []
    for secret in secrets:
        kind, cert = _first_certificate(secret)
        serial = str(status.get("serial") or "").lower()
        same = cert is not None and format(cert.serial_number, "x") == serial
        if kind == "Cert Chain" and same and status.get("next_rotation"):
            secret = {**secret, "next_rotation": status["next_rotation"]}
        out.append(secret)
    return out
