"""Secrets through the installed `isthmus` against a real isthmusd (debug logging):
apply, get (tables show no data, -o yaml|json do), an immutable Secret, a refused apply,
delete, and that no log of isthmusd ever holds a byte of the key."""

from __future__ import annotations

import base64
import datetime
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from isthmus.testing.certs import Pki, b64, secret_yaml
from isthmus.testing.daemon import DaemonProcess

ISTHMUS = str(Path(sys.executable).parent / "isthmus")

PKI = Pki()
SERVER = PKI.server("bookinfo.example.com")
OTHER = PKI.server("other.example.com")
PASSWORD = "correct-horse-battery-staple-4711"


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    running = DaemonProcess(tmp_path / "home", extra_args=["--log-level", "debug"]).start()
    try:
        yield running
    finally:
        running.stop()


def run_cli(
    daemon: DaemonProcess, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ISTHMUS, "--home", str(daemon.home), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def apply(daemon: DaemonProcess, text: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(daemon, "apply", "-f", "-", *args, stdin=text)


def secret_pieces(*values: bytes | str) -> list[str]:
    """What must never be shown: each value's base64 (a prefix, as a wrapped dump would
    start) and each line of a PEM body."""
    out = []
    for value in values:
        raw = value.encode() if isinstance(value, str) else value
        out.append(b64(raw)[:32])
        out.extend(
            line
            for line in raw.decode().splitlines()
            if len(line) >= 16 and not line.startswith("-----")
        )
    return out


def assert_not_shown(text: str, *values: bytes | str) -> None:
    for piece in secret_pieces(*values):
        assert piece not in text


def logs(daemon: DaemonProcess) -> str:
    files = [daemon.log_path, *daemon.home.glob("logs/*")]
    return "\n".join(p.read_text(errors="replace") for p in files if p.is_file())


CREDENTIAL = secret_yaml(
    "bookinfo-credential",
    {"tls.crt": SERVER.certificate, "tls.key": SERVER.key},
    string_data={"ca.crt": PKI.ca_pem.decode()},
)
TOKEN = (
    "apiVersion: v1\nkind: Secret\nmetadata: {name: token, namespace: istio-system}\n"
    f"stringData: {{password: {PASSWORD}}}\n"
)


def test_apply_get_and_delete_never_show_data_but_in_yaml_and_json(daemon: DaemonProcess) -> None:
    applied = apply(daemon, CREDENTIAL + "---\n" + TOKEN)
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout == "secret/bookinfo-credential created\nsecret/token created\n"

    table = run_cli(daemon, "get", "secrets", "-n", "istio-system")
    assert table.returncode == 0, table.stderr
    rows = [line.split() for line in table.stdout.splitlines()]
    assert [row[:3] for row in rows] == [
        ["NAME", "TYPE", "DATA"],
        ["bookinfo-credential", "kubernetes.io/tls", "3"],
        ["token", "Opaque", "1"],
    ]
    assert rows[0][-1] == "AGE"

    shown = [
        table.stdout,
        run_cli(daemon, "get", "secrets", "-A").stdout,
        run_cli(daemon, "get", "secrets", "-n", "istio-system", "-o", "wide").stdout,
        run_cli(daemon, "get", "secret", "bookinfo-credential", "-n", "istio-system").stdout,
    ]
    for output in shown:
        assert "bookinfo-credential" in output
        assert_not_shown(output, SERVER.key, SERVER.certificate, PKI.ca_pem, PASSWORD)

    as_yaml = run_cli(
        daemon, "get", "secret", "bookinfo-credential", "-n", "istio-system", "-o", "yaml"
    )
    assert as_yaml.returncode == 0, as_yaml.stderr
    document = yaml.safe_load(as_yaml.stdout)
    assert "stringData" not in document
    assert {k: base64.b64decode(v) for k, v in document["data"].items()} == {
        "ca.crt": PKI.ca_pem,
        "tls.crt": SERVER.certificate,
        "tls.key": SERVER.key,
    }
    as_json = run_cli(daemon, "get", "secret", "token", "-n", "istio-system", "-o", "json")
    assert json.loads(as_json.stdout)["data"] == {"password": b64(PASSWORD)}

    again = apply(daemon, CREDENTIAL)
    assert again.stdout == "secret/bookinfo-credential unchanged\n"  # stringData merged as stored

    deleted = run_cli(
        daemon, "delete", "secret", "bookinfo-credential", "token", "-n", "istio-system"
    )
    assert deleted.returncode == 0, deleted.stderr
    gone = run_cli(daemon, "get", "secrets", "-n", "istio-system")
    assert gone.stdout == "" and "No resources found" in gone.stderr

    log = logs(daemon)
    assert " apply dry_run=False objects=2 " in log  # the logs are there, and read
    assert_not_shown(log, SERVER.key, SERVER.certificate, PASSWORD)
    assert (daemon.home / "isthmus.db").stat().st_mode & 0o077 == 0


def test_a_refused_apply_names_the_key_and_no_log_holds_it(daemon: DaemonProcess) -> None:
    mismatched = secret_yaml(
        "bookinfo-credential", {"tls.crt": SERVER.certificate, "tls.key": OTHER.key}
    )
    not_base64 = (
        "apiVersion: v1\nkind: Secret\nmetadata: {name: token, namespace: istio-system}\n"
        f"data: {{password: '{PASSWORD}'}}\n"
    )

    refused = apply(daemon, mismatched + "---\n" + not_base64)

    assert refused.returncode == 1
    assert refused.stdout == ""
    assert "Traceback" not in refused.stderr
    assert "data[tls.key]: the private key does not match the certificate in data[tls.crt]" in (
        refused.stderr
    )
    assert "data[password]: must be base64-encoded" in refused.stderr
    for output in (refused.stderr, logs(daemon)):
        assert_not_shown(output, SERVER.certificate, OTHER.key, PASSWORD)
        assert PASSWORD not in output
    offline = run_cli(daemon, "validate", "-f", "-", stdin=mismatched)  # no isthmusd needed
    assert offline.returncode == 1
    assert "the private key does not match" in offline.stderr
    assert_not_shown(offline.stderr, SERVER.certificate, OTHER.key)


def test_an_immutable_secret_keeps_its_data(daemon: DaemonProcess) -> None:
    immutable = secret_yaml(
        "pinned", {"tls.crt": SERVER.certificate, "tls.key": SERVER.key}, immutable=True
    )
    assert apply(daemon, immutable).returncode == 0

    changed = immutable.replace(b64(SERVER.key), b64(OTHER.key)).replace(
        b64(SERVER.certificate), b64(OTHER.certificate)
    )
    for args in ((), ("--dry-run",)):
        refused = apply(daemon, changed, *args)
        assert refused.returncode == 1, refused.stdout
        assert refused.stderr.strip().endswith(
            "Secret istio-system/pinned: data: field is immutable when `immutable` is set; "
            "delete the Secret and create it again to change it"
        )
        assert_not_shown(refused.stderr, OTHER.key, SERVER.key)

    assert run_cli(daemon, "delete", "secret", "pinned", "-n", "istio-system").returncode == 0
    assert apply(daemon, changed).stdout == "secret/pinned created\n"
    assert_not_shown(logs(daemon), SERVER.key, OTHER.key)


def test_an_expired_certificate_is_applied_with_a_warning(daemon: DaemonProcess) -> None:
    now = datetime.datetime.now(datetime.UTC)
    expired = PKI.server(
        valid_from=now - datetime.timedelta(days=30), valid_until=now - datetime.timedelta(days=2)
    )

    applied = apply(
        daemon, secret_yaml("old", {"tls.crt": expired.certificate, "tls.key": expired.key})
    )

    assert applied.returncode == 0, applied.stderr
    assert applied.stdout == "secret/old created\n"
    (warning,) = applied.stderr.splitlines()
    assert warning.startswith(
        "Warning: Secret istio-system/old: data[tls.crt]: the certificate expired at "
    )
    assert_not_shown(applied.stderr + logs(daemon), expired.key, expired.certificate)
