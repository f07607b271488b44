"""Sockets created inside another network namespace, from the daemon's own process.

A socket belongs to the namespace it was created in, whatever thread later uses it. So a
short-lived worker thread enters the pod's namespace (setns(2) only moves the calling
thread), creates the socket, and returns; the daemon then connects and talks with asyncio
as usual. This is how the runtime probes pods, reads their sidecar's admin API and forwards
ports without routing anything from the root namespace into the mesh.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import socket
import threading

CLONE_NEWNET = 0x40000000
_NETNS_DIR = "/var/run/netns"
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _setns(fd: int) -> None:
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


def socket_in_netns(
    netns: str, family: int = socket.AF_INET, kind: int = socket.SOCK_STREAM
) -> socket.socket:
    """A new, non-blocking socket living in network namespace `netns` (by `ip netns` name)."""
    result: dict[str, socket.socket | BaseException] = {}

    def work() -> None:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(os.path.join(_NETNS_DIR, netns), os.O_RDONLY)
        try:
            _setns(target)
            try:
                sock = socket.socket(family, kind)
                sock.setblocking(False)
                result["sock"] = sock
            finally:
                _setns(own)
        except BaseException as exc:  # handed to the caller's thread
            result["error"] = exc
        finally:
            os.close(own)
            os.close(target)

    thread = threading.Thread(target=work, name=f"netns-{netns}")
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    sock = result["sock"]
    assert isinstance(sock, socket.socket)
    return sock


async def open_connection_in_netns(
    netns: str, host: str, port: int, timeout: float = 2.0
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """asyncio streams to host:port as seen from inside `netns`."""
    sock = socket_in_netns(netns)
    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(loop.sock_connect(sock, (host, port)), timeout)
    except BaseException:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock)


async def http_get_in_netns(
    netns: str, host: str, port: int, path: str = "/", timeout: float = 2.0
) -> int:
    """Status code of a plain HTTP/1.0 GET from inside `netns` (probes, readiness)."""
    reader, writer = await open_connection_in_netns(netns, host, port, timeout)
    try:
        request = f"GET {path} HTTP/1.0\r\nHost: {host}:{port}\r\nUser-Agent: isthmus-probe\r\n\r\n"
        writer.write(request.encode())
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), timeout)
    finally:
        writer.close()
    parts = line.split(b" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise ConnectionError(f"not an HTTP response: {line[:40]!r}")
    return int(parts[1])


MAX_BODY = 1 << 20


def _dechunk(body: bytes) -> bytes:
    """The payload of an HTTP/1.1 chunked body."""
    out = bytearray()
    rest = body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            break
        out += rest[:size]
        rest = rest[size + 2 :]  # the chunk and its CRLF
    return bytes(out)


async def http_get_text_in_netns(
    netns: str, host: str, port: int, path: str = "/", timeout: float = 2.0
) -> tuple[int, str]:
    """Status and body of an HTTP/1.1 GET (Connection: close) from inside `netns`.

    HTTP/1.1 because Envoy's admin API refuses HTTP/1.0; the body may come chunked."""
    reader, writer = await open_connection_in_netns(netns, host, port, timeout)
    try:
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: isthmus-runtime\r\n"
            "Connection: close\r\n\r\n"
        )
        writer.write(request.encode())
        await writer.drain()
        raw = b""
        while len(raw) < MAX_BODY:
            chunk = await asyncio.wait_for(reader.read(65536), timeout)
            if not chunk:
                break
            raw += chunk
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ", 2)
    if len(parts) < 2 or not parts[1].isdigit():
        raise ConnectionError(f"not an HTTP response: {lines[0][:40]!r}")
    headers = {
        k.strip().lower(): v.strip().lower() for k, _, v in (h.partition(b":") for h in lines[1:])
    }
    if headers.get(b"transfer-encoding") == b"chunked":
        body = _dechunk(body)
    return int(parts[1]), body.decode(errors="replace")
