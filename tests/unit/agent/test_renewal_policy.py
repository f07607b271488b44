"""When the agent renews: half the lifetime, ±10%, counted from when the certificate came."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from isthmus.agent.certificate_manager import MIN_RENEW_DELAY_S, RenewalPolicy
from isthmus.agent.certificates import WorkloadCertificate

NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def certificate(not_before: datetime, lifetime: timedelta) -> WorkloadCertificate:
    return WorkloadCertificate(
        identity="spiffe://cluster.local/ns/shop/sa/web",
        chain_pem=("leaf",),
        roots_pem=("root",),
        serial=1,
        not_before=not_before,
        not_after=not_before + lifetime,
        key_pem=b"",
    )


@pytest.mark.parametrize(
    ("draw", "hours"),
    [(0.5, 12.0), (0.0, 12.0 * 0.9), (1.0, 12.0 * 1.1), (0.25, 12.0 * 0.95)],
)
def test_half_the_lifetime_with_ten_percent_jitter(draw: float, hours: float) -> None:
    renew = RenewalPolicy().renew_at(certificate(NOW, timedelta(hours=24)), NOW, draw)
    assert renew - NOW == pytest.approx(timedelta(hours=hours), abs=timedelta(milliseconds=1))


def test_a_backdated_not_before_does_not_shorten_the_wait() -> None:
    # The CA backdates by a minute: a 1m certificate lasts 2m on paper, 1m from now.
    issued = certificate(NOW - timedelta(minutes=1), timedelta(minutes=2))
    renew = RenewalPolicy(jitter=0).renew_at(issued, NOW, 0.5)
    assert renew - NOW == timedelta(seconds=30)


def test_grace_ratio_as_istios_secret_grace_period_ratio() -> None:
    renew = RenewalPolicy(grace_ratio=0.9, jitter=0).renew_at(
        certificate(NOW, timedelta(minutes=1)), NOW, 0.0
    )
    assert renew - NOW == pytest.approx(timedelta(seconds=6), abs=timedelta(milliseconds=1))


def test_never_renews_in_a_tight_loop_nor_after_expiry() -> None:
    tiny = RenewalPolicy(grace_ratio=0.99, jitter=0).renew_at(
        certificate(NOW, timedelta(seconds=10)), NOW, 0.5
    )
    assert tiny - NOW == timedelta(seconds=MIN_RENEW_DELAY_S)
    late = RenewalPolicy(grace_ratio=0.05, jitter=0.5).renew_at(
        certificate(NOW, timedelta(hours=1)), NOW, 1.0
    )
    assert late < NOW + timedelta(hours=1)


@pytest.mark.parametrize(
    ("grace", "jitter", "message"),
    [(0.0, 0.1, "grace_ratio"), (1.0, 0.1, "grace_ratio"), (0.5, 1.0, "jitter")],
)
def test_nonsense_policies_are_refused(grace: float, jitter: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RenewalPolicy(grace_ratio=grace, jitter=jitter)
