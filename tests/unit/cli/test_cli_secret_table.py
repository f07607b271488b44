"""`isthmus get secrets`: kubectl's columns (NAME TYPE DATA AGE), never a value."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from isthmus.cli.render import table


def secret(name: str, data: dict[str, str], secret_type: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": "istio-system",
            "creationTimestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "data": data,
    }
    if secret_type is not None:
        body["type"] = secret_type
    return body


VALUE = "aHVudGVyMi1wYXNzd29yZC1vZi1zb21lb25l"


def test_secret_tables_show_type_and_key_count_only() -> None:
    bodies = [
        secret("bookinfo", {"tls.crt": VALUE, "tls.key": VALUE}, "kubernetes.io/tls"),
        secret("token", {"password": VALUE}),
    ]

    for wide in (False, True):
        lines = table("Secret", bodies, with_namespace=False, wide=wide).splitlines()

        assert [line.split()[:3] for line in lines] == [
            ["NAME", "TYPE", "DATA"],
            ["bookinfo", "kubernetes.io/tls", "2"],
            ["token", "Opaque", "1"],
        ]
        assert lines[0].split()[-1] == "AGE"
        assert all(VALUE not in line and "hunter2" not in line for line in lines)


def test_string_data_keys_count_too() -> None:
    body = secret("s", {"a": VALUE})
    body["stringData"] = {"a": "x", "b": "y"}

    (_, row) = table("Secret", [body], with_namespace=True, wide=False).splitlines()

    assert row.split()[:4] == ["istio-system", "s", "Opaque", "2"]
