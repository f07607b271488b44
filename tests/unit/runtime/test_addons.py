"""Which pod gets an addon's directory (only the root namespace's, only
$ISTHMUS_HOME/addons/NAME, only a real root-owned directory), and how the host writes into
a directory such a pod can change: never following a link the pod planted."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest

from isthmus.runtime.addons import (
    ADDON_ANNOTATION,
    ADDON_MOUNT,
    addon_mount,
    make_directory,
    write_file,
)
from isthmus.runtime.isolation import isolated_argv
from isthmus.runtime.security_context import ContainerConfigError, ContainerSecurity

ROOT_NS = "istio-system"
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="the directory must be owned by root")


def ask(home: Path, name: str, namespace: str = ROOT_NS) -> tuple[Path, Path] | None:
    return addon_mount(home, ROOT_NS, namespace, {ADDON_ANNOTATION: name})


def test_pods_without_the_annotation_get_nothing(tmp_path: Path) -> None:
    assert addon_mount(tmp_path, ROOT_NS, "production", {"app": "x"}) is None


@as_root
def test_a_root_namespace_pod_gets_its_addons_directory(tmp_path: Path) -> None:
    made = make_directory(tmp_path, "prometheus")
    assert made == tmp_path / "addons" / "prometheus"
    assert ask(tmp_path, "prometheus") == (made, ADDON_MOUNT)
    assert str(ADDON_MOUNT) == "/run/isthmus/addon"


@as_root
def test_other_namespaces_and_other_names_are_refused(tmp_path: Path) -> None:
    make_directory(tmp_path, "prometheus")
    (tmp_path / "ca").mkdir()
    with pytest.raises(ContainerConfigError, match="only in the root namespace istio-system"):
        ask(tmp_path, "prometheus", namespace="production")
    for name in ("../ca", "..", "prometheus/..", "a/b", "", "Prometheus", "-x"):
        with pytest.raises(ContainerConfigError, match="is not an addon name"):
            ask(tmp_path, name)
    with pytest.raises(ContainerConfigError, match="does not exist"):
        ask(tmp_path, "grafana")  # never made on demand


@as_root
def test_a_link_or_a_directory_not_owned_by_root_is_refused(tmp_path: Path) -> None:
    make_directory(tmp_path, "prometheus")
    (tmp_path / "ca").mkdir()
    (tmp_path / "addons" / "evil").symlink_to(tmp_path / "ca")
    with pytest.raises(ContainerConfigError, match="not a directory owned by root"):
        ask(tmp_path, "evil")
    os.chown(tmp_path / "addons" / "prometheus", 1000, 1000)
    with pytest.raises(ContainerConfigError, match="not a directory owned by root"):
        ask(tmp_path, "prometheus")


def test_write_file_replaces_atomically_and_leaves_no_temporary(tmp_path: Path) -> None:
    old = os.umask(0o077)
    try:
        path = write_file(tmp_path, "prometheus", "file_sd/pods.json", b"[]\n")
    finally:
        os.umask(old)
    path = write_file(tmp_path, "prometheus", "file_sd/pods.json", b"[]\n")
    assert path == tmp_path / "addons" / "prometheus" / "file_sd" / "pods.json"
    write_file(tmp_path, "prometheus", "file_sd/pods.json", json.dumps([{"a": 1}]).encode())
    assert json.loads(path.read_text()) == [{"a": 1}]
    assert os.listdir(path.parent) == ["pods.json"]
    assert path.stat().st_mode & 0o777 == 0o644
    for directory in (path.parent, path.parent.parent, path.parent.parent.parent):
        assert directory.stat().st_mode & 0o777 == 0o755  # whatever the umask


def test_write_file_never_follows_a_planted_link(tmp_path: Path) -> None:
    """The addon's pod replaced its file_sd directory by a link to somewhere else: the host
    must not write there (it runs as root)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    addon = tmp_path / "addons" / "prometheus"
    addon.mkdir(parents=True)
    (addon / "file_sd").symlink_to(outside)
    with pytest.raises(OSError):
        write_file(tmp_path, "prometheus", "file_sd/pods.json", b"[]\n")
    assert os.listdir(outside) == []
    # A link in place of the file itself is replaced, not written through.
    os.unlink(addon / "file_sd")
    (addon / "file_sd").mkdir()
    target = outside / "victim"
    target.write_text("keep")
    (addon / "file_sd" / "pods.json").symlink_to(target)
    write_file(tmp_path, "prometheus", "file_sd/pods.json", b"[]\n")
    assert target.read_text() == "keep"
    assert not (addon / "file_sd" / "pods.json").is_symlink()


def test_paths_outside_the_addons_directory_are_refused(tmp_path: Path) -> None:
    for name, relative in (("../ca", "x"), ("prometheus", "../../ca/x"), ("ok", "a/./b")):
        with pytest.raises(ValueError, match="not an addon path"):
            write_file(tmp_path, name, relative, b"")
    assert not (tmp_path / "ca").exists()


def test_the_isolation_plan_carries_the_exposed_directory() -> None:
    argv = isolated_argv(
        "prometheus",
        ContainerSecurity(),
        ["/usr/bin/prometheus"],
        cwd="/",
        hidden=[Path("/home/mesh"), Path("/run/isthmus")],
        exposed=[(Path("/home/mesh/addons/prometheus"), ADDON_MOUNT)],
    )
    plan = json.loads(base64.urlsafe_b64decode(argv[-1]))
    assert plan["expose"] == [["/home/mesh/addons/prometheus", "/run/isthmus/addon"]]
    assert plan["hide"] == ["/home/mesh", "/run/isthmus"]
