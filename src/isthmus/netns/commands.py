"""The one way isthmus runs external networking commands (`ip`, `iptables-restore`, ...).

Every command goes through `run` (asyncio, never blocks the loop) or `run_sync`, so each one
is logged as `debug netns command argv=... rc=...` and a failure is one exception naming the
command, its exit code and its stderr, instead of a silently half-configured namespace.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shlex
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

log = logging.getLogger("isthmus.netns")

# Daemons are often started with a PATH that lacks the sbin directories `ip` lives in.
_FALLBACK_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/local/bin", "/usr/bin", "/bin")

REQUIRED_TOOLS = ("ip", "iptables-restore", "setpriv", "sysctl", "unshare")
_TOOLS_HINT = (
    "isthmus needs root and the `ip`, `iptables-restore`, `setpriv` and `unshare` commands "
    "(Debian: apt-get install iproute2 iptables util-linux)"
)


@dataclass(frozen=True)
class CommandResult:
    """What a finished command returned."""

    argv: tuple[str, ...]
    returncode: int
    stdout: bytes
    stderr: bytes

    @property
    def text(self) -> str:
        """stdout decoded as UTF-8 (the tools we run print UTF-8 or ASCII)."""
        return self.stdout.decode("utf-8", errors="replace")


class CommandFailed(RuntimeError):
    """A command exited non-zero or timed out; the message names all three facts."""

    def __init__(self, argv: Sequence[str], returncode: int | None, stderr: bytes, why: str = ""):
        self.argv = tuple(argv)
        self.returncode = returncode
        self.stderr = stderr.decode("utf-8", errors="replace").strip()
        outcome = why or f"exit code {returncode}"
        detail = f": {self.stderr}" if self.stderr else ""
        super().__init__(f"command `{shlex.join(self.argv)}` failed ({outcome}){detail}")


class ToolsMissing(RuntimeError):
    """isthmus can not manage pod networks on this machine (not root, or tools absent)."""


def tool_path(name: str) -> str:
    """The absolute path of `name`, looking in PATH and then the usual sbin/bin directories."""
    found = shutil.which(name) or shutil.which(name, path=os.pathsep.join(_FALLBACK_DIRS))
    return found or name


def require_tools() -> None:
    """Raise ToolsMissing with one clear line when not root or a needed command is absent."""
    missing: list[str] = []
    if os.geteuid() != 0:
        missing.append("not running as root")
    missing += [f"`{name}` not found" for name in REQUIRED_TOOLS if tool_path(name) == name]
    if missing:
        raise ToolsMissing(f"{_TOOLS_HINT}: {', '.join(missing)}")


def _resolve(argv: Sequence[str]) -> tuple[str, ...]:
    if not argv:
        raise ValueError("empty command")
    first = argv[0] if "/" in argv[0] else tool_path(argv[0])
    return (first, *argv[1:])


def _logged(argv: tuple[str, ...], returncode: int | None) -> None:
    log.debug("command argv=%s rc=%s", json.dumps(shlex.join(argv)), returncode)


def _checked(result: CommandResult, check: bool) -> CommandResult:
    if check and result.returncode != 0:
        raise CommandFailed(result.argv, result.returncode, result.stderr)
    return result


async def run(
    argv: Sequence[str],
    *,
    input: bytes | None = None,
    check: bool = True,
    timeout: float = 30,
) -> CommandResult:
    """Run argv as a subprocess without blocking the loop; raise CommandFailed if check."""
    resolved = _resolve(argv)
    try:
        proc = await asyncio.create_subprocess_exec(
            *resolved,
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except FileNotFoundError:
        raise CommandFailed(resolved, None, b"", "command not found") from None
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(input), timeout)
    except (TimeoutError, asyncio.CancelledError) as exc:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        _logged(resolved, None)
        if isinstance(exc, asyncio.CancelledError):
            raise
        raise CommandFailed(resolved, None, b"", f"timed out after {timeout:g}s") from None
    assert proc.returncode is not None
    _logged(resolved, proc.returncode)
    return _checked(CommandResult(resolved, proc.returncode, stdout, stderr), check)


def run_sync(
    argv: Sequence[str],
    *,
    input: bytes | None = None,
    check: bool = True,
    timeout: float = 30,
) -> CommandResult:
    """The blocking twin of `run`, for code that has no event loop (CLI, tests)."""
    resolved = _resolve(argv)
    try:
        done = subprocess.run(
            resolved,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        raise CommandFailed(resolved, None, b"", "command not found") from None
    except subprocess.TimeoutExpired:
        _logged(resolved, None)
        raise CommandFailed(resolved, None, b"", f"timed out after {timeout:g}s") from None
    _logged(resolved, done.returncode)
    return _checked(CommandResult(resolved, done.returncode, done.stdout, done.stderr), check)
