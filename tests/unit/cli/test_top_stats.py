"""`isthmus top`'s arithmetic, with exact numbers: counter increases (resets, new series),
rates per sidecar, the 5xx share, and Prometheus' histogram_quantile."""

from __future__ import annotations

import math

import pytest

from isthmus.cli.top_stats import (
    DURATION_BUCKETS,
    REQUESTS,
    Scrape,
    Traffic,
    by_labels,
    edges,
    histogram_quantile,
    increase,
    parse_samples,
    services,
)

INV = "inventory.shop.svc.cluster.local"
INF = math.inf


def _labels(**labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def requests(value: float, code: str, reporter: str = "destination", **extra: str) -> tuple:
    key = (
        REQUESTS,
        _labels(reporter=reporter, destination_service=INV, response_code=code, **extra),
    )
    return key, value


def buckets(counts: dict[float, float], reporter: str = "destination", **extra: str) -> list:
    out = []
    for bound, count in counts.items():
        le = "+Inf" if math.isinf(bound) else f"{bound:g}"
        labels = _labels(reporter=reporter, destination_service=INV, le=le, **extra)
        out.append(((DURATION_BUCKETS, labels), count))
    return out


def scrape(at: float, *series: tuple | list) -> Scrape:
    samples = {}
    for item in series:
        for key, value in item if isinstance(item, list) else [item]:
            samples[key] = value
    return Scrape(at, samples)


def test_prometheus_text_is_read_into_series() -> None:
    text = (
        "# TYPE istio_requests_total counter\n"
        'istio_requests_total{reporter="source",destination_service="a\\"b",'
        'response_code="200"} 7\n'
        "istio_requests_total_other 3\n"
        'istio_request_duration_milliseconds_bucket{le="+Inf",reporter="source"} 2.5e+01\n'
        'istio_request_duration_milliseconds_sum{reporter="source"} 9\n'
        "istio_requests_total{broken 1\n"
        "istio_requests_total 4\n"
    )
    assert parse_samples(text) == {
        (REQUESTS, _labels(reporter="source", destination_service='a"b', response_code="200")): 7,
        (DURATION_BUCKETS, _labels(le="+Inf", reporter="source")): 25.0,
        (REQUESTS, ()): 4,
    }


def test_increase_counts_resets_and_new_series_from_zero() -> None:
    a, b, c = ("x", (("k", "a"),)), ("x", (("k", "b"),)), ("x", (("k", "c"),))
    before = Scrape(0, {a: 10, b: 50, c: 1})
    after = Scrape(1, {a: 15, b: 5, ("x", (("k", "new"),)): 3})
    assert increase(before, after) == {a: 5, b: 5, ("x", (("k", "new"),)): 3}


@pytest.mark.parametrize(
    ("q", "pairs", "expected"),
    [
        (0.5, [(1, 10), (2, 20), (INF, 20)], 1.0),
        (0.75, [(1, 10), (2, 20), (INF, 20)], 1.5),
        (0.25, [(1, 10), (2, 20), (INF, 20)], 0.5),
        (0.99, [(1, 10), (2, 20), (INF, 30)], 2.0),  # in the +Inf bucket: highest bound
        (0.1, [(-1, 5), (INF, 10)], -1.0),  # first bucket with a bound <= 0
        (0.5, [(1, 10), (2, 8), (INF, 12)], 0.6),  # made monotonic first
        (1.0, [(1, 3), (1, 2), (INF, 5)], 1.0),  # equal bounds are added up
        (1.5, [(1, 1), (INF, 1)], INF),
        (-0.5, [(1, 1), (INF, 1)], -INF),
    ],
)
def test_histogram_quantile_as_prometheus(
    q: float, pairs: list[tuple[float, float]], expected: float
) -> None:
    assert histogram_quantile(q, pairs) == pytest.approx(expected)


@pytest.mark.parametrize("pairs", [[], [(1, 3), (2, 5)], [(1, 0), (INF, 0)], [(INF, 4)]])
def test_histogram_quantile_without_an_answer_is_nan(pairs: list[tuple[float, float]]) -> None:
    assert math.isnan(histogram_quantile(0.5, pairs))


def test_per_service_rates_errors_and_quantiles_over_sidecars() -> None:
    # Sidecar A, read 2 s apart: 80 OK and 20 x 503 more; its latency buckets grew too.
    a = (
        scrape(
            10.0,
            requests(100, "200"),
            requests(10, "503"),
            buckets({0.5: 0, 1: 0, 5: 0, 10: 0, INF: 0}),
        ),
        scrape(
            12.0,
            requests(180, "200"),
            requests(30, "503"),
            buckets({0.5: 0, 1: 10, 5: 60, 10: 90, INF: 100}),
        ),
    )
    # Sidecar B, read 4 s apart: a new series (40 OK) and a reset counter (now 5).
    b = (scrape(10.5, requests(50, "503")), scrape(14.5, requests(40, "200"), requests(5, "503")))
    # A client sidecar's view never counts as the service's.
    c = (scrape(0, requests(0, "200", "source")), scrape(1, requests(99, "200", "source")))
    result = services([a, b, c])
    assert list(result) == [(INV,)]
    traffic = result[(INV,)]
    assert traffic.rps == pytest.approx(80 / 2 + 20 / 2 + 40 / 4 + 5 / 4)  # 61.25
    assert traffic.error_ratio == pytest.approx((20 / 2 + 5 / 4) / 61.25)
    # Bucket rates 0, 5, 30, 45, 50: rank 25 falls in (1, 5]: 1 + 4 * (25 - 5) / 25.
    assert traffic.p50 == pytest.approx(4.2)
    assert traffic.p99 == pytest.approx(10.0)  # rank 49.5 is in +Inf: the highest bound


def test_per_edge_from_the_client_sidecars() -> None:
    order = {"source_workload": "order", "source_workload_namespace": "shop"}
    before = scrape(
        0.0,
        requests(0, "200", "source", **order),
        requests(0, "500", "source", source_workload="cart"),
        buckets({1: 0, INF: 0}, "source", **order),
    )
    after = scrape(
        3.0,
        requests(27, "200", "source", **order),
        requests(3, "500", "source", source_workload="cart"),
        buckets({1: 3, INF: 30}, "source", **order),
    )
    server = (scrape(0, requests(0, "200")), scrape(1, requests(10, "200")))
    result = edges([(before, after), server])
    assert result == {
        ("cart", "unknown", INV): Traffic(rps=1.0, error_ratio=1.0, p50=None, p99=None),
        ("order", "shop", INV): Traffic(rps=9.0, error_ratio=0.0, p50=1.0, p99=1.0),
    }


def test_by_any_labels_such_as_the_destination_version() -> None:
    v1, v2 = {"destination_version": "v1"}, {"destination_version": "v2"}
    before = scrape(0.0, requests(0, "200", "source", **v1), requests(0, "503", "source", **v2))
    after = scrape(
        2.0,
        requests(38, "200", "source", **v1),
        requests(2, "503", "source", **v2),
        requests(5, "200", "destination", **v1),  # the other reporter: not counted
    )
    by = ("destination_service", "destination_version")
    assert by_labels([(before, after)], "source", by) == {
        (INV, "v1"): Traffic(rps=19.0, error_ratio=0.0, p50=None, p99=None),
        (INV, "v2"): Traffic(rps=1.0, error_ratio=1.0, p50=None, p99=None),
    }


def test_no_traffic_and_unusable_windows() -> None:
    same = scrape(5.0, requests(7, "200"))
    assert services([(same, same)]) == {}  # no time passed: nothing to say
    idle = services([(scrape(0, requests(7, "200")), scrape(2, requests(7, "200")))])
    assert idle == {(INV,): Traffic(rps=0.0, error_ratio=None, p50=None, p99=None)}
