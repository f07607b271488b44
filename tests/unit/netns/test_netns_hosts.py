"""Pod hosts files: rendering, hostile names, and in-place rewrites that keep the inode."""

from __future__ import annotations

from pathlib import Path

import pytest

from isthmus.netns.hosts import render_hosts, write_in_place


def test_render_hosts_sorts_addresses_and_keeps_name_order() -> None:
    text = render_hosts(
        "web-1",
        {
            "10.44.0.10": ["reviews", "reviews.default", "reviews"],
            "10.44.0.9": ["inventory-service", "inventory-service.production.svc.cluster.local"],
            "10.44.0.11": [],
        },
    )
    assert text.splitlines()[1:] == [
        "127.0.0.1\tlocalhost",
        "10.44.0.9\tinventory-service inventory-service.production.svc.cluster.local",
        "10.44.0.10\treviews reviews.default",
    ]
    assert text.startswith("# isthmus: hosts of pod web-1")


@pytest.mark.parametrize("name", ["evil\n10.0.0.1 bank", "a b", "", "-x", "x" * 254, "a/b"])
def test_hostile_names_are_rejected(name: str) -> None:
    with pytest.raises(ValueError, match="not a valid DNS name"):
        render_hosts("web", {"10.44.0.9": [name]})


def test_bad_address_is_rejected() -> None:
    with pytest.raises(ValueError, match="not an IP address"):
        render_hosts("web", {"10.44.0.9\n1.2.3.4": ["x"]})


def test_write_in_place_keeps_the_inode_and_never_shrinks(tmp_path: Path) -> None:
    path = tmp_path / "netns" / "hosts"
    write_in_place(path, "long first content\n")
    inode = path.stat().st_ino
    assert oct(path.stat().st_mode & 0o777) == "0o644"
    write_in_place(path, "short\n")
    assert path.stat().st_ino == inode
    content = path.read_text()
    assert content.startswith("short\n") and set(content[len("short\n") :]) == {"\n"}
    assert len(content) == len("long first content\n")
    write_in_place(path, "now longer than everything before it\n")
    assert path.read_text() == "now longer than everything before it\n"
    assert path.stat().st_ino == inode
