"""Table, age and document rendering of `isthmus get`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from isthmus.cli.columns import age, human_duration
from isthmus.cli.render import as_document, table, to_yaml


def vs(name: str, namespace: str, hosts: list[str], created: str) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": namespace, "creationTimestamp": created},
        "spec": {"hosts": hosts},
    }


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0s"),
        (119, "119s"),
        (120, "2m"),
        (312, "5m12s"),
        (45 * 60, "45m"),
        (4 * 3600 + 5 * 60, "4h5m"),
        (30 * 3600, "30h"),
        (3 * 86400 + 4 * 3600, "3d4h"),
        (40 * 86400, "40d"),
        (3 * 365 * 86400 + 86400, "3y1d"),
    ],
)
def test_human_duration_coarsens_like_kubectl(seconds: int, text: str) -> None:
    assert human_duration(seconds) == text


def test_age_reads_the_creation_timestamp() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    created = (now - timedelta(seconds=75)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert age(vs("a", "default", [], created), now) == "75s"
    assert age({"metadata": {}}, now) == "<none>"
    assert age({"metadata": {"creationTimestamp": "yesterday"}}, now) == "<none>"


def test_table_aligns_columns_and_adds_namespace_for_all_namespaces() -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    bodies = [
        vs("reviews", "production", ["reviews", "reviews.example.com"], stamp),
        vs("r", "default", [], stamp),
    ]
    lines = table("VirtualService", bodies, with_namespace=True, wide=False).splitlines()
    assert lines[0].split() == ["NAMESPACE", "NAME", "GATEWAYS", "HOSTS", "AGE"]
    assert lines[1].split()[:4] == [
        "production",
        "reviews",
        "<none>",
        "reviews,reviews.example.com",
    ]
    assert lines[2].split()[:4] == ["default", "r", "<none>", "<none>"]
    name_column = lines[0].index("NAME ")
    assert lines[1].index("reviews") == lines[2].index("r ") == name_column


def test_wide_table_adds_kind_specific_columns() -> None:
    dr = {
        "metadata": {"name": "reviews", "namespace": "default"},
        "spec": {"host": "reviews", "subsets": [{"name": "v1"}, {"name": "v2"}]},
    }
    narrow = table("DestinationRule", [dr], with_namespace=False, wide=False).splitlines()
    wide = table("DestinationRule", [dr], with_namespace=False, wide=True).splitlines()
    assert narrow[0].split() == ["NAME", "HOST", "AGE"]
    assert wide[0].split() == ["NAME", "HOST", "SUBSETS", "AGE"]
    assert wide[1].split() == ["reviews", "reviews", "v1,v2", "<none>"]


def test_several_objects_print_as_a_list_one_as_itself() -> None:
    one = vs("a", "default", ["a"], "2026-01-01T00:00:00Z")
    assert as_document([one], single=True) == one
    listed = as_document([one, one], single=False)
    assert listed["kind"] == "List" and len(listed["items"]) == 2
    assert yaml.safe_load(to_yaml(listed)) == listed
