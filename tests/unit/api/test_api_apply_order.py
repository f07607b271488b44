"""The same object more than once in one apply: every copy checked, the last one wins.

kubectl applies documents in order, so a later copy of an object overrides an earlier
one; isthmus does the same in one transaction (`final_objects`), and a bad copy, even one
a later copy would override, still refuses the whole input.
"""

from __future__ import annotations

import pytest
from _apihelp import document, load, load_errors

from isthmus.api import ApiError, final_objects, load_sources


def vs(subset: str, *, name: str = "reviews", api_version: str = "networking.istio.io/v1") -> str:
    return document(
        "VirtualService",
        f"""
        hosts: [reviews]
        http:
        - route:
          - destination: {{host: reviews, subset: {subset}}}
        """,
        name=name,
        api_version=api_version,
    )


def subset_of(body: dict[str, object]) -> object:
    return body["spec"]["http"][0]["route"][0]["destination"]["subset"]  # type: ignore[index]


def test_every_copy_loads_in_document_order() -> None:
    first, second = load(vs("v1") + "---\n" + vs("v2"))

    assert first.key == second.key == ("VirtualService", "production", "reviews")
    assert (first.line, second.line) == (1, 12)
    assert [subset_of(first.body), subset_of(second.body)] == ["v1", "v2"]


def test_the_last_copy_wins_in_the_place_of_the_first() -> None:
    text = vs("v1") + "---\n" + vs("v1", name="ratings") + "---\n" + vs("v2")

    reviews, ratings = final_objects(load(text))

    assert reviews.last.key == ("VirtualService", "production", "reviews")
    assert subset_of(reviews.last.body) == "v2"
    assert [c.line for c in reviews.copies] == [1, 23]
    assert [c.line for c in reviews.superseded] == [1]
    assert reviews.last.place == "app.yaml:23"
    assert ratings.superseded == () and ratings.last.key[2] == "ratings"


def test_copies_may_differ_in_api_version_and_the_last_ones_is_kept() -> None:
    text = vs("v1", api_version="networking.istio.io/v1alpha3") + "---\n" + vs("v2")

    (reviews,) = final_objects(load(text))

    assert reviews.last.body["apiVersion"] == "networking.istio.io/v1"


def test_an_invalid_earlier_copy_still_refuses_everything() -> None:
    bad = vs("v1").replace("subset: v1}", "subset: v1}\n      weight: 101")

    errors = load_errors(bad + "---\n" + vs("v2"))

    assert errors == [
        "app.yaml:1 VirtualService production/reviews: spec.http[0].route[0].weight: "
        "must be between 0 and 100"
    ]


def test_an_invalid_last_copy_refuses_everything() -> None:
    bad = vs("v2").replace("hosts:", "hostz:")

    errors = load_errors(vs("v1") + "---\n" + bad)

    assert len(errors) == 1 and errors[0].startswith("app.yaml:12 VirtualService production/")
    assert "hostz" in errors[0]


def test_copies_across_sources_are_one_object_and_the_later_source_wins() -> None:
    loaded = load_sources([("a.yaml", vs("v1")), ("b.yaml", vs("v2"))])

    (reviews,) = final_objects(loaded)

    assert [c.place for c in reviews.copies] == ["a.yaml:1", "b.yaml:1"]
    assert subset_of(reviews.last.body) == "v2"


def test_load_sources_reports_the_problems_of_every_source_together() -> None:
    with pytest.raises(ApiError) as raised:
        load_sources(
            [
                ("a.yaml", vs("v1").replace("hosts:", "hostz:")),
                ("ok.yaml", vs("v1", name="ok")),
                ("b.yaml", "apiVersion: v1\nkind: Widget\nmetadata: {name: w}\n"),
            ]
        )

    sources = [line.split(" ", 1)[0] for line in raised.value.errors]
    assert sources == ["a.yaml:1", "b.yaml:1"]


def test_namespace_default_applies_before_copies_are_matched() -> None:
    named = vs("v1")
    unnamed = vs("v2").replace("  namespace: production\n", "")

    (one,) = final_objects(load_sources([("a.yaml", named), ("b.yaml", unnamed)], "production"))
    assert subset_of(one.last.body) == "v2"

    two = final_objects(load_sources([("a.yaml", named), ("b.yaml", unnamed)], "staging"))
    assert [o.last.key[1] for o in two] == ["production", "staging"]
