"""The command helper: real processes, exit codes, stderr, timeouts, logging; exec_argv."""

from __future__ import annotations

import logging
import os

import pytest

from isthmus.netns.commands import (
    CommandFailed,
    ToolsMissing,
    require_tools,
    run,
    run_sync,
    tool_path,
)
from isthmus.netns.network import exec_argv


async def test_run_returns_output_and_feeds_input() -> None:
    result = await run(["cat"], input=b"hello")
    assert result.returncode == 0
    assert result.text == "hello"
    assert result.argv[0].endswith("/cat")


async def test_run_failure_names_command_exit_code_and_stderr() -> None:
    with pytest.raises(CommandFailed) as caught:
        await run(["sh", "-c", "echo 'no such device' >&2; exit 3"])
    message = str(caught.value)
    assert "sh -c" in message and "exit code 3" in message and "no such device" in message
    assert caught.value.returncode == 3
    unchecked = await run(["sh", "-c", "exit 4"], check=False)
    assert unchecked.returncode == 4


async def test_run_timeout_kills_the_process() -> None:
    with pytest.raises(CommandFailed, match=r"timed out after 0.2s"):
        await run(["sleep", "5"], timeout=0.2)


async def test_missing_command() -> None:
    with pytest.raises(CommandFailed, match="command not found"):
        await run(["/nonexistent/isthmus-tool"])


def test_run_sync_twin(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="isthmus.netns"):
        assert run_sync(["echo", "hi"]).text == "hi\n"
        with pytest.raises(CommandFailed, match="exit code 1"):
            run_sync(["false"])
        with pytest.raises(CommandFailed, match="timed out"):
            run_sync(["sleep", "5"], timeout=0.2)
    messages = [r.getMessage() for r in caplog.records]
    assert any(m.startswith('command argv="') and m.endswith("rc=0") for m in messages)
    assert any(m.endswith("rc=1") for m in messages)


def test_tool_path_finds_sbin_tools_without_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert tool_path("sh").startswith("/")
    assert tool_path("isthmus-no-such-tool") == "isthmus-no-such-tool"


def test_require_tools_names_what_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    if os.geteuid() == 0:
        require_tools()
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(ToolsMissing) as caught:
        require_tools()
    message = str(caught.value)
    assert message.startswith("isthmus needs root and the `ip`, `iptables-restore`, `setpriv` and")
    assert "apt-get install iproute2 iptables util-linux" in message
    assert "not running as root" in message


def test_exec_argv() -> None:
    plain = exec_argv("isthmus-web", ["python3", "-m", "http.server"])
    assert plain[1:] == ["netns", "exec", "isthmus-web", "python3", "-m", "http.server"]
    assert plain[0].endswith("ip")
    proxy = exec_argv("isthmus-web", ["envoy", "-c", "b.yaml"], uid=1337, gid=1337)
    assert proxy[4].endswith("setpriv")
    assert proxy[5:] == [
        "--reuid",
        "1337",
        "--regid",
        "1337",
        "--clear-groups",
        "envoy",
        "-c",
        "b.yaml",
    ]
    with pytest.raises(ValueError):
        exec_argv("../etc", ["true"])
    with pytest.raises(ValueError):
        exec_argv("isthmus-web", [])
