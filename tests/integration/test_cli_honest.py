"""The honest CLI against a real isthmusd process (control plane only).

- A stalled (SIGSTOPped) isthmusd: the installed `isthmus` says it is still waiting, then
  that the outcome is unknown, exits 3, no traceback; after SIGCONT the apply happened
  exactly once, and re-running with the key from the hint replays the first result.
- A burst of large applies beyond isthmusd's wait list: the excess is answered 429 busy,
  the rest are applied whole, each exactly once.
- Health checks answer while isthmusd parses a large apply.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from isthmus.api.yamlstream import MAX_INPUT_BYTES
from isthmus.daemon.http_api import MAX_WAITING_CHANGES
from isthmus.testing.daemon import DaemonProcess, wait_for

ISTHMUS = str(Path(sys.executable).parent / "isthmus")

VS = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: production}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
"""


def large_vs(name: str, size: int = MAX_INPUT_BYTES - 4096) -> str:
    """A valid VirtualService of about `size` bytes: many hosts (one YAML node each)."""
    head = (
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\n"
        f"metadata: {{name: {name}, namespace: bench}}\n"
        f"spec:\n  http:\n  - route:\n    - destination: {{host: {name}}}\n  hosts:\n"
    )
    line_size = len("  - h000000.bench.svc.cluster.local\n")
    count = (size - len(head)) // line_size
    return head + "".join(f"  - h{i:06d}.bench.svc.cluster.local\n" for i in range(count))


@pytest.fixture
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonProcess]:
    running = DaemonProcess(tmp_path_factory.mktemp("honest") / "home").start()
    try:
        yield running
    finally:
        process = running._process
        if process is not None and process.poll() is None:
            os.kill(process.pid, signal.SIGCONT)  # never leave it stopped
        running.stop()


def run_cli(daemon: DaemonProcess, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ISTHMUS, "--home", str(daemon.home), *args], capture_output=True, text=True, timeout=120
    )


def revision(daemon: DaemonProcess) -> int:
    return int(daemon.client.get("/v1/healthz").json()["revision"])


def applies_logged(daemon: DaemonProcess) -> int:
    """How many applies isthmusd's handler carried out (one log line each)."""
    return sum(" apply dry_run=False " in line for line in daemon.log_text().splitlines())


def stored(daemon: DaemonProcess, namespace: str, name: str) -> list[dict[str, Any]]:
    params = {"kind": "VirtualService", "namespace": namespace, "name": name}
    return list(daemon.client.get("/v1/objects", params=params).json()["items"])


def test_stalled_daemon_outcome_unknown_then_applied_once(
    daemon: DaemonProcess, tmp_path: Path
) -> None:
    manifest = tmp_path / "vs.yaml"
    manifest.write_text(VS)
    before, logged = revision(daemon), applies_logged(daemon)
    assert daemon._process is not None
    pid = daemon._process.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        result = run_cli(daemon, "apply", "-f", str(manifest), "--timeout", "5s")
    finally:
        os.kill(pid, signal.SIGCONT)
    assert result.returncode == 3, result.stderr
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == "isthmus: still waiting for isthmusd (3s, timeout 5s)..."
    assert lines[-2] == (
        "error: isthmusd did not answer POST /v1/apply within 5s; the outcome is unknown"
    )
    hint = lines[-1]
    assert hint.startswith(
        f"check with `isthmus --home {daemon.home} get vs reviews -n production`, or re-run with"
    )
    key = re.search(r"--idempotency-key (\S+) to apply it at most once$", hint)
    assert key is not None, hint

    # Resumed, isthmusd reads the buffered request and applies it, exactly once.
    wait_for(lambda: stored(daemon, "production", "reviews") != [], what="the buffered apply")
    assert revision(daemon) == before + 1
    assert applies_logged(daemon) == logged + 1

    again = run_cli(daemon, "apply", "-f", str(manifest), "--idempotency-key", key.group(1))
    assert again.returncode == 0, again.stderr
    assert again.stdout == "virtualservice.networking.istio.io/reviews created\n"
    assert again.stderr == (
        f"isthmus: isthmusd had already applied this (--idempotency-key {key.group(1)}); "
        "its result then:\n"
    )
    assert revision(daemon) == before + 1
    assert applies_logged(daemon) == logged + 1  # replayed: the handler did not run again


def test_burst_beyond_the_wait_list_is_busy_and_the_rest_applied_whole(
    daemon: DaemonProcess,
) -> None:
    count = MAX_WAITING_CHANGES + 6
    names = [f"burst{i}" for i in range(count)]
    # Every apply is one small valid object and a large one; the last large one is invalid
    # at its very end, so its apply must leave no trace (all or nothing).
    bodies = []
    for i, name in enumerate(names):
        big = large_vs(name)
        if i == count - 1:
            big = big.replace("  http:\n", "  htp:\n")
        small = VS.replace("name: reviews", f"name: {name}-small")
        text = small + "---\n" + big
        bodies.append(json.dumps({"documents": [{"source": f"{name}.yaml", "text": text}]}))
    before = revision(daemon)
    start = threading.Barrier(count)
    transport_path = str(daemon.socket)

    def apply(body: str) -> tuple[int, dict[str, Any]]:
        with httpx.Client(
            transport=httpx.HTTPTransport(uds=transport_path),
            base_url="http://isthmusd",
            timeout=300,
        ) as http:
            start.wait(60)
            response = http.post(
                "/v1/apply", content=body, headers={"Content-Type": "application/json"}
            )
            return response.status_code, response.json()

    with ThreadPoolExecutor(count) as pool:
        answers = list(pool.map(apply, bodies))

    statuses = [status for status, _ in answers]
    assert set(statuses) <= {200, 422, 429}, answers
    busy = [answer for status, answer in answers if status == 429]
    assert busy, "a burst beyond the wait list must be turned away in part"
    for answer in busy:
        (line,) = answer["errors"]
        assert re.fullmatch(r"isthmusd is busy: \d+ applies are waiting; retry shortly", line)
    applied = 0
    for name, (status, answer) in zip(names, answers, strict=True):
        small = stored(daemon, "production", f"{name}-small")
        big = stored(daemon, "bench", name)
        if status == 200:
            applied += 1
            assert [r["result"] for r in answer["results"]] == ["created", "created"]
            assert len(small) == 1 and len(big) == 1
            assert big[0]["spec"]["hosts"][-1] == large_vs(name).splitlines()[-1][4:]
        else:
            assert small == [] and big == [], (name, status)  # all or nothing
            if status == 422:
                assert name == names[-1] and "htp" in " ".join(answer["errors"])
    assert revision(daemon) == before + 2 * applied  # each applied exactly once


def test_health_answers_while_a_large_apply_is_parsed(daemon: DaemonProcess) -> None:
    body = json.dumps({"documents": [{"source": "big.yaml", "text": large_vs("big")}]}).encode()
    sent, done = threading.Event(), threading.Event()
    answered_while_parsing: list[int] = []

    def poll_health() -> None:
        with httpx.Client(
            transport=httpx.HTTPTransport(uds=str(daemon.socket)),
            base_url="http://isthmusd",
            timeout=60,
        ) as http:
            while not done.is_set():
                status = http.get("/v1/healthz").status_code
                if sent.is_set() and not done.is_set():
                    answered_while_parsing.append(status)

    poller = threading.Thread(target=poll_health, daemon=True)
    poller.start()
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(120)
            sock.connect(str(daemon.socket))
            head = (
                "POST /v1/apply HTTP/1.1\r\nHost: isthmusd\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            )
            # sendall returns once isthmusd has read all but a socket buffer of the body:
            # from then on it is parsing, and answers to health checks are counted.
            sock.sendall(head.encode() + body)
            sent.set()
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
    finally:
        done.set()
        poller.join(60)
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:300]
    assert b'"result": "created"' in answer
    # With the parse on the event loop, no health check could answer until the apply did.
    assert len(answered_while_parsing) >= 3 and set(answered_while_parsing) == {200}
