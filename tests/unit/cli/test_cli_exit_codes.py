"""An honest CLI against a real isthmusd API served in-process (SqliteStore + build_app on
a unix socket, in a thread): exit 3 and how to check when isthmusd does not answer,
replays with --idempotency-key, busy answers retried until the timeout.

"Stalled" is the daemon's event loop blocked on a threading.Event, which is what a
SIGSTOPped isthmusd looks like to a client: connections are accepted by the kernel,
requests are buffered, nothing answers until it resumes."""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest
from _api_thread import ApiThread
from click.testing import CliRunner, Result

from isthmus.api.loader import LoadedObject
from isthmus.cli.main import cli
from isthmus.daemon.client import DaemonClient, Document
from isthmus.daemon.http_api import ApiHooks, build_app
from isthmus.home import MeshHome
from isthmus.testing.daemon import wait_for

VS = """\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: production}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews}
"""


def Daemon(home: MeshHome, hooks: ApiHooks | None = None, max_waiting: int = 8) -> ApiThread:
    """isthmusd's object API (no mesh) in a thread."""
    return ApiThread(home, lambda store: build_app(store, hooks, max_waiting=max_waiting))


class HeldWorker:
    """A validate_apply hook that holds isthmusd's parse worker until released."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, objects: Sequence[LoadedObject]) -> list[str]:
        self.entered.set()
        self.release.wait(30)
        return []


@pytest.fixture
def home() -> Iterator[MeshHome]:
    root = Path(tempfile.mkdtemp(prefix="isth-", dir="/tmp"))  # short unix socket path
    try:
        yield MeshHome(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def daemon(home: MeshHome) -> Iterator[ApiThread]:
    with Daemon(home) as running:
        yield running


Isthmus = Callable[..., Result]


@pytest.fixture
def isthmus(home: MeshHome) -> Isthmus:
    def run(*args: str) -> Result:
        return CliRunner().invoke(cli, ["--home", str(home.root), *args])

    return run


@pytest.fixture
def manifest(tmp_path: Path) -> str:
    path = tmp_path / "vs.yaml"
    path.write_text(VS)
    return str(path)


def revision(home: MeshHome) -> int:
    with DaemonClient(home) as client:
        return int(client.healthz()["revision"])


def stored(home: MeshHome) -> list[dict[str, object]]:
    with DaemonClient(home) as client:
        return client.get("VirtualService", "production", "reviews")


KEY_IN_HINT = re.compile(r"--idempotency-key (\S+) to (?:apply|delete) it at most once$")


def test_apply_without_answer_exits_3_then_takes_effect_once(
    daemon: Daemon, isthmus: Isthmus, home: MeshHome, manifest: str
) -> None:
    with daemon.stalled():
        result = isthmus("apply", "-f", manifest, "--timeout", "1s")
    assert result.exit_code == 3
    assert result.stdout == ""
    error, hint = result.stderr.splitlines()
    assert error == (
        "error: isthmusd did not answer POST /v1/apply within 1s; the outcome is unknown"
    )
    assert hint.startswith(
        f"check with `isthmus --home {home.root} get vs reviews -n production`, or re-run with "
    )
    match = KEY_IN_HINT.search(hint)
    assert match is not None, hint
    # The request was buffered; once isthmusd runs again it takes effect, once.
    wait_for(lambda: stored(home) != [], what="the buffered apply")
    assert revision(home) == 1

    again = isthmus("apply", "-f", manifest, "--idempotency-key", match.group(1))
    assert again.exit_code == 0, again.output
    assert again.stdout == "virtualservice.networking.istio.io/reviews created\n"
    assert again.stderr == (
        f"isthmus: isthmusd had already applied this (--idempotency-key {match.group(1)}); "
        "its result then:\n"
    )
    assert revision(home) == 1

    fresh = isthmus("apply", "-f", manifest)  # no key: a new request, nothing to change
    assert fresh.stdout == "virtualservice.networking.istio.io/reviews unchanged\n"


def test_delete_without_answer_says_how_to_check(
    daemon: Daemon, isthmus: Isthmus, home: MeshHome, manifest: str
) -> None:
    assert isthmus("apply", "-f", manifest).exit_code == 0
    with daemon.stalled():
        result = isthmus(
            "delete", "vs", "reviews", "-n", "production", "--timeout", "500ms",
            "--idempotency-key", "delete-reviews-1",
        )  # fmt: skip
    assert result.exit_code == 3
    assert result.stderr.splitlines() == [
        "error: isthmusd did not answer DELETE /v1/objects within 500ms; the outcome is unknown",
        f"check with `isthmus --home {home.root} get vs reviews -n production`, or re-run "
        "with --idempotency-key delete-reviews-1 to delete it at most once",
    ]
    wait_for(lambda: stored(home) == [], what="the buffered delete")
    again = isthmus(
        "delete", "vs", "reviews", "-n", "production", "--idempotency-key", "delete-reviews-1"
    )
    assert (again.exit_code, again.stdout) == (
        0,
        'virtualservice.networking.istio.io "reviews" deleted\n',
    )
    assert "had already deleted this" in again.stderr
    assert revision(home) == 2


def test_read_without_answer_exits_3_and_says_nothing_changed(
    daemon: Daemon, isthmus: Isthmus, home: MeshHome
) -> None:
    with daemon.stalled():
        result = isthmus("get", "vs", "-A", "--timeout", "300ms")
    assert result.exit_code == 3
    assert result.stderr == (
        "error: isthmusd did not answer GET /v1/objects within 300ms; nothing was changed\n"
    )
    assert revision(home) == 0  # answers again (after the abandoned read)


def test_key_reused_for_another_manifest_is_refused(
    daemon: Daemon, isthmus: Isthmus, home: MeshHome, manifest: str, tmp_path: Path
) -> None:
    assert isthmus("apply", "-f", manifest, "--idempotency-key", "k1").exit_code == 0
    changed = tmp_path / "changed.yaml"
    changed.write_text(VS.replace("[reviews]", "[reviews, ratings]"))
    result = isthmus("apply", "-f", str(changed), "--idempotency-key", "k1")
    assert result.exit_code == 1
    assert result.stderr == (
        "Idempotency-Key k1 was already used for a different request; "
        "use a new key for a new request\n"
    )
    assert stored(home)[0]["spec"] == {
        "hosts": ["reviews"],
        "http": [{"route": [{"destination": {"host": "reviews"}}]}],
    }


def test_not_running_and_bad_options_exit_1(isthmus: Isthmus, home: MeshHome) -> None:
    absent = isthmus("apply", "-f", "-", "--timeout", "1s")
    assert absent.exit_code == 1  # -f - reads empty stdin: a user error before any request
    missing = isthmus("get", "vs", "--timeout", "1s")
    assert (missing.exit_code, missing.stderr.splitlines()[0]) == (
        1,
        f"error: isthmusd is not running at {home.root} "
        f"(start it with `isthmus daemon --home {home.root}` or `isthmus up`)",
    )
    bad_key = isthmus("apply", "-f", "x.yaml", "--idempotency-key", "two words")
    assert bad_key.exit_code == 1
    assert bad_key.stderr.startswith("error: Invalid value for '--idempotency-key'")


@pytest.fixture
def held() -> Iterator[HeldWorker]:
    hold = HeldWorker()
    yield hold
    hold.release.set()


@pytest.fixture
def busy_daemon(home: MeshHome, held: HeldWorker) -> Iterator[Daemon]:
    """A daemon whose parse worker is held by an apply, with no room to wait."""

    def occupy() -> None:
        with DaemonClient(home) as client:
            client.apply([Document("first.yaml", VS)])

    with Daemon(home, ApiHooks(validate_apply=held), max_waiting=0) as running:
        first = threading.Thread(target=occupy, daemon=True)
        first.start()
        assert held.entered.wait(10)
        yield running
        held.release.set()
        first.join(10)


def test_busy_until_the_timeout_is_a_refusal(
    busy_daemon: Daemon, isthmus: Isthmus, tmp_path: Path
) -> None:
    other = tmp_path / "other.yaml"
    other.write_text(VS.replace("reviews", "ratings"))
    result = isthmus("apply", "-f", str(other), "--timeout", "1s")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "isthmus: isthmusd is busy with another apply; retrying for up to 1s...",
        "isthmusd is busy with another apply; retry shortly",
    ]


def test_busy_is_retried_with_the_same_key(
    busy_daemon: Daemon, home: MeshHome, held: HeldWorker
) -> None:
    told: list[str] = []

    def notify(line: str) -> None:
        told.append(line)
        held.release.set()  # the worker frees up once the client has been turned away

    with DaemonClient(home, timeout=30, notify=notify) as client:
        reply = client.apply([Document("other.yaml", VS.replace("reviews", "ratings"))])
    assert told == ["isthmusd is busy with another apply; retrying for up to 30s..."]
    assert [r["result"] for r in reply["results"]] == ["created"]
    assert not reply.replayed
