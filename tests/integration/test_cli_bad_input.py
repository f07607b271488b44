"""Bad input through the real CLI and a real isthmusd: one clear line, exit 1, nothing changes."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from isthmus.testing.daemon import DaemonProcess

ISTHMUS = str(Path(sys.executable).parent / "isthmus")

GOOD = """apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: production}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
"""


def _vs_with(http: str) -> str:
    return GOOD.replace(
        "  http:\n  - route:\n    - destination: {host: reviews, subset: v1}\n", http
    )


CORPUS: dict[str, str] = {
    "wrong-type": _vs_with("  http: {route: 5}\n"),
    "unknown-field": _vs_with(
        "  http:\n  - route: [{destination: {host: reviews}}]\n    retires: {}\n"
    ),
    "bad-duration": _vs_with(
        "  http:\n  - route: [{destination: {host: reviews}}]\n    timeout: 3 seconds\n"
    ),
    "weights-not-100": _vs_with(
        "  http:\n  - route:\n    - {destination: {host: reviews, subset: v1}, weight: 90}\n"
        "    - {destination: {host: reviews, subset: v2}, weight: 5}\n"
    ),
    "bad-regex": _vs_with(
        "  http:\n  - match: [{uri: {regex: '/(a'}}]\n    route: [{destination: {host: reviews}}]\n"
    ),
    "lookahead-regex": _vs_with(
        "  http:\n  - match: [{uri: {regex: '/(?=a)'}}]\n"
        "    route: [{destination: {host: reviews}}]\n"
    ),
    "missing-hosts": GOOD.replace("  hosts: [reviews]\n", ""),
    "not-yaml": "apiVersion: v1\nkind: [unclosed\n  - : :\n",
    "deep-nesting": "a: " + "[" * 5000 + "]" * 5000 + "\n",
    "unsupported-kind": (
        "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: g}\nspec: {}\n"
    ),
    "second-document-bad": GOOD
    + "---\n"
    + GOOD.replace("name: reviews", "name: other").replace(
        "subset: v1}", "subset: v1}\n      weight: 101"
    ),
}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    with DaemonProcess(tmp_path_factory.mktemp("bad") / "home") as d:
        yield d


def _cli(
    daemon: DaemonProcess, *args: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [ISTHMUS, "--home", str(daemon.home), *args], input=stdin, capture_output=True, timeout=60
    )


def _revision(daemon: DaemonProcess) -> int:
    return int(daemon.client.get("/v1/healthz").json()["revision"])


@pytest.mark.parametrize("case", sorted(CORPUS))
def test_bad_document_gives_one_line_and_changes_nothing(
    daemon: DaemonProcess, tmp_path: Path, case: str
) -> None:
    before = _revision(daemon)
    path = tmp_path / "app.yaml"
    path.write_text(CORPUS[case])
    result = _cli(daemon, "apply", "-f", str(path))
    err = result.stderr.decode()
    assert result.returncode == 1, (result.stdout, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(("error: " + str(path), str(path))), lines[0]
    assert "Traceback" not in err
    assert _revision(daemon) == before


def test_fifty_megabyte_document_is_refused_quickly(daemon: DaemonProcess) -> None:
    before = _revision(daemon)
    blob = b"apiVersion: v1\nkind: Service\nmetadata: {name: big}\nspec:\n  ports:\n" + (
        b"  - {port: 80}\n" * (50 * 1024 * 1024 // 16)
    )
    result = _cli(daemon, "apply", "-f", "-", stdin=blob)
    err = result.stderr.decode()
    assert result.returncode == 1
    # One error; a loaded machine may add the CLI's progress line while it waits.
    lines = [line for line in err.strip().splitlines() if "still waiting for" not in line]
    assert len(lines) == 1, err
    assert _revision(daemon) == before


def test_good_document_after_bad_ones_applies(daemon: DaemonProcess, tmp_path: Path) -> None:
    path = tmp_path / "good.yaml"
    path.write_text(GOOD)
    result = _cli(daemon, "apply", "-f", str(path))
    assert result.returncode == 0, result.stderr
    assert b"created" in result.stdout or b"unchanged" in result.stdout
