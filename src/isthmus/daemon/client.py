"""A small synchronous client of isthmusd's HTTP API over the mesh's unix socket.

Every way of failing becomes one of these exceptions, whose lines the CLI prints as
they are:

- DaemonNotRunning: nothing answers on the socket; nothing was sent.
- DaemonError: isthmusd refused the request and said why (`status`, one line per problem).
- NoAnswer (a DaemonError with status 0): no answer came. If the request may have
  reached isthmusd (`sent`) and was a change, whether it took effect is unknown.
  DaemonTimeout is the usual case: no answer within the timeout.

Every request has a deadline, `timeout` seconds after it starts. Mutating requests (POST,
PUT, PATCH, DELETE) carry an `Idempotency-Key` (a new uuid4 per request unless the caller
gives one), which makes resending them safe: isthmusd runs a key once and replays its
answer to duplicates. So when the connection breaks after a request may have left, the
client sends it again with the same key, and a 429 (isthmusd busy) is retried after a
short pause; both until the deadline. `notify`, if given, receives one line when the
client starts retrying a busy daemon and, while an answer takes longer than
WAIT_NOTICE_AFTER seconds, a "still waiting" line every WAIT_NOTICE_EVERY seconds.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

from isthmus.home import MeshHome

__all__ = [
    "DEFAULT_TIMEOUT",
    "IDEMPOTENCY_KEY",
    "IDEMPOTENCY_REPLAYED",
    "MAX_IDEMPOTENCY_KEY_LENGTH",
    "DaemonClient",
    "DaemonError",
    "DaemonNotRunning",
    "DaemonTimeout",
    "Document",
    "NoAnswer",
    "Reply",
    "format_seconds",
    "new_idempotency_key",
    "valid_idempotency_key",
]

DEFAULT_TIMEOUT = 60.0
WAIT_NOTICE_AFTER = 3.0
WAIT_NOTICE_EVERY = 5.0
RETRY_PAUSE = 0.1  # first pause before resending; doubles up to RETRY_PAUSE_MAX
RETRY_PAUSE_MAX = 1.0

IDEMPOTENCY_KEY = "Idempotency-Key"
IDEMPOTENCY_REPLAYED = "Idempotency-Replayed"
MAX_IDEMPOTENCY_KEY_LENGTH = 255
MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_KEY_PATTERN = re.compile(rf"[\x21-\x7e]{{1,{MAX_IDEMPOTENCY_KEY_LENGTH}}}")

Notify = Callable[[str], None]


@dataclass(frozen=True)
class Document:
    """One YAML/JSON text to apply or delete, and where it came from (for error lines)."""

    source: str
    text: str


class Reply(dict[str, Any]):
    """isthmusd's JSON answer. `replayed` is True when isthmusd had already run a request
    with this idempotency key and answered from its record: nothing ran again."""

    replayed: bool = False


class DaemonNotRunning(Exception):
    """Nothing answers on the mesh's socket."""

    def __init__(self, home: MeshHome) -> None:
        root = home.root
        super().__init__(
            f"isthmusd is not running at {root} "
            f"(start it with `isthmus daemon --home {root}` or `isthmus up`)"
        )
        self.home = home

    @property
    def lines(self) -> list[str]:
        return [str(self)]


class DaemonError(Exception):
    """The daemon refused a request; `lines` holds one problem per line."""

    def __init__(self, status: int, lines: Sequence[str]) -> None:
        super().__init__("\n".join(lines))
        self.status = status
        self.lines = list(lines)


class NoAnswer(DaemonError):
    """isthmusd did not answer a request; `status` is 0.

    `sent`: the request may have reached isthmusd. For a change that was sent, the
    outcome is unknown: it may still take effect. `lines` is the `error: ...` line and
    then `hints`, how to find out; the caller, who knows what the request meant, may
    replace them with set_hints().
    """

    def __init__(
        self,
        message: str,
        *,
        method: str,
        path: str,
        timeout: float,
        idempotency_key: str | None,
        sent: bool = True,
        hints: Sequence[str] = (),
    ) -> None:
        self.message = message
        self.method = method
        self.path = path
        self.timeout = timeout
        self.idempotency_key = idempotency_key
        self.sent = sent
        self.hints = list(hints)
        super().__init__(0, self._lines())

    @property
    def outcome_unknown(self) -> bool:
        return self.sent and self.method in MUTATING_METHODS

    def set_hints(self, *hints: str) -> None:
        self.hints = list(hints)
        self.lines = self._lines()
        self.args = ("\n".join(self.lines),)

    def _lines(self) -> list[str]:
        return [f"error: {self.message}", *self.hints]


class DaemonTimeout(NoAnswer):
    """No answer within the client's timeout."""


def new_idempotency_key() -> str:
    return str(uuid.uuid4())


def valid_idempotency_key(key: str) -> bool:
    """Keys are 1-255 visible ASCII characters (a uuid4 is the usual choice)."""
    return _KEY_PATTERN.fullmatch(key) is not None


def format_seconds(seconds: float) -> str:
    """`2s`, `1.5s`, `500ms`: how durations appear in messages."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    if float(seconds).is_integer():
        return f"{int(seconds)}s"
    return f"{seconds:g}s"


class DaemonClient:
    """Calls isthmusd at one mesh home. Use as a context manager or call close().

    `timeout`: seconds each request may take, retries included. `notify`: where to say
    that an answer is slow or isthmusd busy (the CLI prints it on stderr).
    """

    def __init__(
        self, home: MeshHome, timeout: float = DEFAULT_TIMEOUT, notify: Notify | None = None
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.home = home
        self.timeout = timeout
        self._notify = notify
        self._http = httpx.Client(
            transport=httpx.HTTPTransport(uds=str(home.socket)),
            base_url="http://isthmusd",
            timeout=timeout,
        )

    def __enter__(self) -> DaemonClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def healthz(self) -> Reply:
        return self.request("GET", "/v1/healthz")

    def apply(
        self,
        documents: Iterable[Document],
        dry_run: bool = False,
        namespace: str | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Reply:
        """Apply documents in one transaction: `{"results": [...], "dryRun", "revision"}`."""
        return self.request(
            "POST",
            "/v1/apply",
            {"documents": _documents(documents), "dryRun": dry_run, "namespace": namespace},
            idempotency_key=idempotency_key,
        )

    def get(
        self, kind: str | None = None, namespace: str | None = None, name: str | None = None
    ) -> list[dict[str, Any]]:
        """Stored object bodies matching the filters (None matches all)."""
        # namespace "" (cluster-scoped objects) is a real filter; None means all namespaces
        filters = (("kind", kind), ("namespace", namespace), ("name", name))
        params = {k: v for k, v in filters if v is not None}
        reply = self.request("GET", "/v1/objects", params=params)
        items = reply.get("items", [])
        assert isinstance(items, list)
        return items

    def delete_keys(
        self, keys: Iterable[tuple[str, str, str]], *, idempotency_key: str | None = None
    ) -> Reply:
        """Delete objects by (kind, namespace, name), all or nothing."""
        return self.request(
            "DELETE",
            "/v1/objects",
            {"keys": [list(k) for k in keys]},
            idempotency_key=idempotency_key,
        )

    def delete_documents(
        self,
        documents: Iterable[Document],
        namespace: str | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Reply:
        """Delete the objects the documents describe (`delete -f`), all or nothing."""
        return self.request(
            "DELETE",
            "/v1/objects",
            {"documents": _documents(documents), "namespace": namespace},
            idempotency_key=idempotency_key,
        )

    def request(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None = None,
        params: dict[str, str] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> Reply:
        """One JSON request; raises DaemonNotRunning, DaemonError or NoAnswer."""
        response = self._send(method, path, body, params, idempotency_key)
        reply = _decode(response)
        reply.replayed = response.headers.get(IDEMPOTENCY_REPLAYED) == "true"
        return reply

    def zipkin(self, path: str, params: dict[str, str] | None = None) -> Any:
        """GET one of Zipkin's query endpoints (`/api/v2/traces`, ...), which isthmusd
        answers on its API socket too: the decoded JSON as Zipkin answers it (a list).
        A refusal is a DaemonError with Zipkin's reason (404: no such trace)."""
        response = self._send("GET", path, None, params, None)
        if response.is_success:
            return response.json()
        if response.headers.get("Content-Type", "").startswith("text/plain"):
            raise DaemonError(response.status_code, [f"error: {response.text.strip()}"])
        raise DaemonError(response.status_code, _error_lines(response))

    def _send(
        self,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        params: dict[str, str] | None,
        idempotency_key: str | None,
    ) -> httpx.Response:
        """Send until answered (resending and retrying as the module says); the answer."""
        method = method.upper()
        if not self.home.socket.exists():
            raise DaemonNotRunning(self.home)
        headers = {}
        key = None
        if method in MUTATING_METHODS:
            key = idempotency_key or new_idempotency_key()
            if not valid_idempotency_key(key):
                raise ValueError(f"invalid idempotency key {key!r}")
            headers[IDEMPOTENCY_KEY] = key
        content = None
        if body is not None:
            content = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        attempt = _Attempts(self, method, path, key)
        with self._wait_notices():
            while True:
                remaining = attempt.remaining()
                try:
                    response = self._http.request(
                        method,
                        path,
                        content=content,
                        params=params,
                        headers=headers,
                        timeout=remaining,
                    )
                except httpx.ConnectTimeout as exc:
                    raise attempt.timed_out() from exc
                except httpx.ConnectError as exc:
                    if attempt.maybe_sent and attempt.mutating:
                        raise attempt.lost() from exc
                    raise DaemonNotRunning(self.home) from exc
                except httpx.TimeoutException as exc:
                    attempt.maybe_sent = True
                    raise attempt.timed_out() from exc
                except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError):
                    attempt.maybe_sent = True  # resend with the same key
                    attempt.pause()
                    continue
                if response.status_code == 429:
                    attempt.busy(response)
                    continue
                return response

    @contextmanager
    def _wait_notices(self) -> Iterator[None]:
        """While inside, tell `notify` every few seconds that the answer is still due."""
        notify = self._notify
        if notify is None:
            yield
            return
        done = threading.Event()
        started = time.monotonic()
        timeout = format_seconds(self.timeout)

        def tell() -> None:
            delay = WAIT_NOTICE_AFTER
            while not done.wait(delay):
                waited = time.monotonic() - started
                notify(f"still waiting for isthmusd ({waited:.0f}s, timeout {timeout})...")
                delay = WAIT_NOTICE_EVERY

        thread = threading.Thread(target=tell, name="isthmus-wait-notice", daemon=True)
        thread.start()
        try:
            yield
        finally:
            done.set()
            thread.join(1.0)

    def _tell(self, line: str) -> None:
        if self._notify is not None:
            self._notify(line)


class _Attempts:
    """The deadline and retry state of one request across its attempts."""

    def __init__(self, client: DaemonClient, method: str, path: str, key: str | None) -> None:
        self.client = client
        self.method = method
        self.path = path
        self.key = key
        self.mutating = method in MUTATING_METHODS
        self.deadline = time.monotonic() + client.timeout
        self.maybe_sent = False  # some attempt may have reached isthmusd
        self._pause = RETRY_PAUSE
        self._told_busy = False
        self._busy_lines: list[str] = []  # isthmusd's last 429 answer

    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self.give_up()
        return left

    def pause(self) -> None:
        """Sleep before the next attempt (never past the deadline); the pause doubles."""
        left = self.deadline - time.monotonic()
        time.sleep(max(0.0, min(self._pause, left)))
        self._pause = min(self._pause * 2, RETRY_PAUSE_MAX)

    def busy(self, response: httpx.Response) -> None:
        """isthmusd refused for now (nothing ran): retry soon, or give up at the deadline."""
        self._busy_lines = _error_lines(response)
        if time.monotonic() + self._pause >= self.deadline:
            raise self.give_up()
        if not self._told_busy:
            self._told_busy = True
            timeout = format_seconds(self.client.timeout)
            reason = self._busy_lines[0].removesuffix("; retry shortly")
            self.client._tell(f"{reason}; retrying for up to {timeout}...")
        self.pause()

    def give_up(self) -> DaemonError:
        """The deadline passed: busy until the end is a refusal, anything else a timeout."""
        if self._busy_lines and not self.maybe_sent:
            return DaemonError(429, self._busy_lines)
        return self.timed_out()

    def timed_out(self) -> DaemonTimeout:
        within = format_seconds(self.client.timeout)
        request = f"{self.method} {self.path}"
        if not self.maybe_sent:
            message = (
                f"isthmusd did not accept the connection for {request} within {within}; "
                "nothing was sent, nothing changed"
            )
            hints: list[str] = []
        elif self.mutating:
            message = f"isthmusd did not answer {request} within {within}; the outcome is unknown"
            hints = ["the change may still take effect; check before running it again"]
        else:
            message = f"isthmusd did not answer {request} within {within}; nothing was changed"
            hints = []
        return DaemonTimeout(
            message,
            sent=self.maybe_sent,
            method=self.method,
            path=self.path,
            timeout=self.client.timeout,
            idempotency_key=self.key,
            hints=hints,
        )

    def lost(self) -> NoAnswer:
        return NoAnswer(
            f"isthmusd closed the connection during {self.method} {self.path} and no longer "
            "answers; the outcome is unknown",
            method=self.method,
            path=self.path,
            timeout=self.client.timeout,
            idempotency_key=self.key,
            hints=["the change may have taken effect; check once isthmusd runs again"],
        )


def _documents(documents: Iterable[Document]) -> list[dict[str, str]]:
    return [{"source": d.source, "text": d.text} for d in documents]


def _error_lines(response: httpx.Response) -> list[str]:
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict) and isinstance(payload.get("errors"), list):
        return [str(e) for e in payload["errors"]]
    return [f"isthmusd answered {response.status_code}: {response.text[:200]!r}"]


def _decode(response: httpx.Response) -> Reply:
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if response.is_success and isinstance(payload, dict):
        return Reply(payload)
    raise DaemonError(response.status_code, _error_lines(response))
