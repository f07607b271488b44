"""The proxy user must reach the work directory; an unreachable one is named in the error."""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from isthmus.agent.proxy_user import (
    ProxyUser,
    WorkdirUnusable,
    check_reachable,
    prepare_workdir,
    share_file,
)


@pytest.fixture
def root() -> Iterator[Path]:
    # Not tmp_path: pytest's base directory is private (0700) on purpose.
    with tempfile.TemporaryDirectory(prefix="isthmus-user-") as directory:
        path = Path(directory)
        path.chmod(0o755)
        yield path


def test_a_private_directory_on_the_way_is_named(root: Path) -> None:
    private = root / "private"
    private.mkdir(mode=0o700)
    with pytest.raises(WorkdirUnusable, match=f"{private} is mode 0700"):
        check_reachable(private / "agent", ProxyUser())


def test_search_permission_is_enough(root: Path) -> None:
    passable = root / "passable"
    passable.mkdir()
    passable.chmod(0o711)
    check_reachable(passable / "agent", ProxyUser())


def test_without_a_proxy_user_everything_stays_private(root: Path) -> None:
    workdir = root / "agent"
    prepare_workdir(workdir, None)
    assert stat.S_IMODE(workdir.stat().st_mode) == 0o700
    bootstrap = workdir / "envoy-bootstrap.json"
    bootstrap.write_text("{}")
    share_file(bootstrap, None)
    assert stat.S_IMODE(bootstrap.stat().st_mode) == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="changing a file's group to 1337 needs root")
def test_proxy_group_may_read_the_bootstrap_and_write_its_log(root: Path) -> None:
    user = ProxyUser()
    workdir = root / "agent"
    prepare_workdir(workdir, user)
    info = workdir.stat()
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (0, 1337, 0o750)
    bootstrap, log = workdir / "envoy-bootstrap.json", workdir / "envoy.log"
    bootstrap.write_text("{}")
    log.touch()
    share_file(bootstrap, user)
    share_file(log, user, writable=True)
    assert stat.S_IMODE(bootstrap.stat().st_mode) == 0o640
    assert stat.S_IMODE(log.stat().st_mode) == 0o660
    assert bootstrap.stat().st_gid == log.stat().st_gid == 1337


@pytest.mark.skipif(os.geteuid() != 0, reason="only root switches Envoy to the proxy user")
def test_prepare_refuses_an_unreachable_workdir(root: Path) -> None:
    private = root / "private"
    private.mkdir(mode=0o700)
    with pytest.raises(WorkdirUnusable, match="uid 1337 can not reach"):
        prepare_workdir(private / "agent", ProxyUser())
