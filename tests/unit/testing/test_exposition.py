"""The strict 0.0.4 reader the metrics tests rely on finds what Prometheus objects to."""

from __future__ import annotations

import pytest

from isthmus.testing.exposition import problems, samples

VALID = """\
# HELP a_total A.
# TYPE a_total counter
a_total{x="1"} 1
a_total{x="2",y="q\\"uote"} 2.5 1700000000000
# TYPE h histogram
h_bucket{le="1"} 0
h_bucket{le="+Inf"} 3
h_sum 1e-3
h_count 3
untyped_thing NaN
"""


def test_a_valid_exposition_has_no_problems() -> None:
    assert problems(VALID) == []


def test_samples_are_read_by_name_with_their_labels() -> None:
    assert samples(VALID, "a_total") == [({"x": "1"}, 1.0), ({"x": "2", "y": 'q\\"uote'}, 2.5)]
    assert samples(VALID, "h_count") == [({}, 3.0)]
    assert samples(VALID, "h") == []
    assert samples('a_total{x="1"} one\nnot a sample\n', "a_total") == []


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a 1\n# TYPE a counter\n", "# TYPE for a after its samples"),
        ("# TYPE a counter\n# TYPE a counter\na 1\n", "second # TYPE line for a"),
        ('# TYPE a counter\na 1\nb 1\na{x="1"} 2\n', "family a appears again"),
        ("a 1\na 2\n", "series a given twice"),
        ('# TYPE h histogram\nh_bucket{le="1"} 1\nh_count 1\n', "has no +Inf bucket"),
        ("# TYPE h histogram\nh_bucket 1\n", "histogram bucket without le"),
        ("a{x=unquoted} 1\n", "not a sample line"),
        ("a one\n", "invalid value"),
        ("# TYPE a counterish\na 1\n", "unknown type"),
        ('a{x="1",x="2"} 1\n', "a label is given twice"),
    ],
)
def test_each_broken_rule_is_named(text: str, problem: str) -> None:
    assert any(problem in found for found in problems(text)), problems(text)
