"""Keeps the pod's workload certificate current: first issue, then renewal before expiry.

The first request is retried (0.5 s doubling to 10 s) for as long as the CA refuses or
is unreachable: the CA may refuse until the node has reported the pod. A renewal starts
at half the certificate's lifetime, with ±10% jitter so that pods started together do
not renew together (Istio's SECRET_GRACE_PERIOD_RATIO 0.5), and uses a new key, as
Istio's agent does; the old certificate stays published until the new one arrives.
What is current is also written to `certificate-status.json` (never the key) for the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from isthmus.agent import _log
from isthmus.agent.certificates import (
    CaClient,
    CaRequestFailed,
    KeyType,
    PrivateKey,
    WorkloadCertificate,
    certificate_request,
    new_private_key,
)
from isthmus.agent.envoy_process import Backoff

STATUS_FILE_NAME = "certificate-status.json"
# Never renew in a tight loop, whatever a CA answers.
MIN_RENEW_DELAY_S = 1.0


@dataclass(frozen=True)
class RenewalPolicy:
    """When to renew: `grace_ratio` of the lifetime before expiry, ± `jitter` of the wait."""

    grace_ratio: float = 0.5
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if not 0 < self.grace_ratio < 1:
            raise ValueError(f"grace_ratio must be between 0 and 1, not {self.grace_ratio}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter must be in [0, 1), not {self.jitter}")

    def renew_at(
        self, certificate: WorkloadCertificate, received_at: datetime, draw: float
    ) -> datetime:
        """The renewal time for `draw` in [0, 1).

        The lifetime counts from when the certificate arrived: a CA backdates not_before
        (by a minute, for clock skew), which on a short lifetime would otherwise make the
        certificate look half used up already.
        """
        start = max(certificate.not_before, received_at)
        lifetime = (certificate.not_after - start).total_seconds()
        factor = 1 + self.jitter * (2 * draw - 1)
        wait = lifetime * (1 - self.grace_ratio) * factor
        wait = max(MIN_RENEW_DELAY_S, min(wait, lifetime * 0.99))
        return start + timedelta(seconds=wait)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment is not None else None


def _write_json(path: Path, document: dict[str, Any]) -> None:
    """Atomically, so the CLI never reads half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(document, indent=1) + "\n")
    tmp.chmod(0o644)
    os.replace(tmp, path)


def _new_request(key_type: KeyType, identity: str) -> tuple[PrivateKey, str]:
    key = new_private_key(key_type)
    return key, certificate_request(key, identity)


class CertificateManager:
    """Obtains, publishes and renews the workload certificate until `stop()`."""

    def __init__(
        self,
        client: CaClient,
        identity: str,
        publish: Callable[[WorkloadCertificate], None],
        *,
        ttl: timedelta,
        key_type: KeyType = "RSA",
        status_path: Path | None = None,
        policy: RenewalPolicy | None = None,
        backoff: Callable[[], Backoff] = Backoff,
        rng: random.Random | None = None,
    ) -> None:
        self.identity = identity
        self._client = client
        self._publish = publish
        self._ttl = ttl
        self._key_type = key_type
        self._status_path = status_path
        self._policy = policy or RenewalPolicy()
        self._backoff = backoff
        self._rng = rng or random.Random()
        self._task: asyncio.Task[None] | None = None
        self._last_error: str | None = None
        self._changed = asyncio.Condition()
        self.current: WorkloadCertificate | None = None
        self.next_rotation: datetime | None = None
        self.issued = 0  # certificates received so far
        self.failures = 0  # failed requests so far

    async def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("certificate manager already started")
        self._write_status()
        self._task = asyncio.create_task(self._run(), name="certificate-manager")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def wait_issued(self, count: int = 1) -> WorkloadCertificate:
        """Wait until `count` certificates have arrived; returns the current one."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.issued >= count)
        assert self.current is not None
        return self.current

    def status(self) -> dict[str, Any]:
        """What the CLI shows: the SAN, serial, validity, next rotation; never the key."""
        current = self.current
        return {
            "san": self.identity,
            "state": "issued" if current is not None else "pending",
            "serial": current.serial_hex if current is not None else None,
            "not_before": _iso(current.not_before if current is not None else None),
            "not_after": _iso(current.not_after if current is not None else None),
            "next_rotation": _iso(self.next_rotation),
            "key_type": self._key_type,
            "issued": self.issued,
            "last_error": self._last_error,
        }

    async def _run(self) -> None:
        while True:
            certificate = await self._obtain()
            received_at = datetime.now(UTC)
            self.next_rotation = self._policy.renew_at(certificate, received_at, self._rng.random())
            self.current = certificate
            self._publish(certificate)
            self._last_error = None
            async with self._changed:
                self.issued += 1
                self._changed.notify_all()
            self._write_status()
            _log.log(
                logging.INFO,
                "certificate_issued",
                identity=self.identity,
                serial=certificate.serial_hex,
                not_after=_iso(certificate.not_after),
                next_rotation=_iso(self.next_rotation),
            )
            wait = (self.next_rotation - datetime.now(UTC)).total_seconds()
            await asyncio.sleep(max(wait, 0.0))

    async def _obtain(self) -> WorkloadCertificate:
        """A new key and a signed certificate for it, retrying until the CA signs."""
        key, csr = await asyncio.to_thread(_new_request, self._key_type, self.identity)
        backoff = self._backoff()
        while True:
            try:
                chain = await self._client.sign(csr, self._ttl)
                return WorkloadCertificate.from_chain(key, self.identity, chain)
            except CaRequestFailed as error:
                reason = str(error)
            except Exception as error:  # a pod without renewals would lose mTLS: keep trying
                reason = f"unexpected error: {error!r}"
            delay = backoff.next()
            self._failed(reason, delay)
            await asyncio.sleep(delay)

    def _failed(self, reason: str, retry_in: float) -> None:
        """Log a refusal once per distinct reason, so a waiting pod does not flood the log."""
        self.failures += 1
        if reason == self._last_error:
            return
        self._last_error = reason
        _log.log(
            logging.WARNING,
            "certificate_request_failed",
            identity=self.identity,
            error=reason,
            retry_in_s=retry_in,
            keeping=self.current.serial_hex if self.current is not None else "(none)",
        )
        self._write_status()

    def _write_status(self) -> None:
        if self._status_path is None:
            return
        try:
            _write_json(self._status_path, self.status())
        except OSError as error:
            _log.log(logging.WARNING, "certificate_status_unwritable", error=error)
