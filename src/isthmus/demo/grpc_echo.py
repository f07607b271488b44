"""A small gRPC echo service and its client, for the demo and the tests.

`python -m isthmus.demo.grpc_echo serve [--port 8080]` serves `isthmus.demo.Echo` with
generic handlers and raw bytes (no .proto to compile):
- `Unary`: answers the request's bytes; a request `status:NAME` (a gRPC status code name
  such as NOT_FOUND) is answered with that status and no message;
- `Chat` (bidirectional stream): answers each message as it arrives.

`python -m isthmus.demo.grpc_echo call TARGET [--count K] [--stream N] [--status NAME]`
makes K calls (one at a time, over one channel): unary ones, or with --stream N one `Chat`
call each sending N messages, and prints one JSON line
{calls, codes: {OK: k, ...}, sent, received} (messages sent and received in all).
Host names are resolved by the system's resolver (getaddrinfo), as every other demo client.
"""

from __future__ import annotations

import argparse
import json
import os
from collections import Counter
from collections.abc import Iterator
from concurrent import futures
from typing import Any

# Before grpc is loaded: resolve with getaddrinfo (the pod's hosts), not c-ares.
os.environ.setdefault("GRPC_DNS_RESOLVER", "native")

import grpc

SERVICE = "isthmus.demo.Echo"
UNARY = f"/{SERVICE}/Unary"
CHAT = f"/{SERVICE}/Chat"
STATUS_PREFIX = b"status:"


def _unary(request: bytes, context: Any) -> bytes:
    if request.startswith(STATUS_PREFIX):
        name = request.removeprefix(STATUS_PREFIX).decode(errors="replace")
        code = grpc.StatusCode.__members__.get(name, grpc.StatusCode.UNKNOWN)
        context.abort(code, f"asked for {name}")
    return request


def _chat(requests: Iterator[bytes], context: Any) -> Iterator[bytes]:
    yield from requests


def server(port: int, workers: int = 8) -> Any:
    """A started server on 0.0.0.0:port (the caller stops it)."""
    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Unary": grpc.unary_unary_rpc_method_handler(_unary),
            "Chat": grpc.stream_stream_rpc_method_handler(_chat),
        },
    )
    running = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
    running.add_generic_rpc_handlers((handler,))
    if running.add_insecure_port(f"0.0.0.0:{port}") == 0:
        raise OSError(f"can not listen on port {port}")
    running.start()
    return running


def call(
    target: str, count: int = 1, stream: int = 0, status: str = "", timeout: float = 10.0
) -> dict[str, Any]:
    """Make `count` calls to `target` and say how they ended."""
    codes: Counter[str] = Counter()
    sent = received = 0
    with grpc.insecure_channel(target) as channel:
        unary = channel.unary_unary(UNARY)
        chat = channel.stream_stream(CHAT)
        for index in range(count):
            try:
                if stream:
                    messages = [f"message {index}.{n}".encode() for n in range(stream)]
                    sent += len(messages)
                    received += sum(1 for _ in chat(iter(messages), timeout=timeout))
                else:
                    payload = STATUS_PREFIX + status.encode() if status else b"hello"
                    sent += 1
                    unary(payload, timeout=timeout)
                    received += 1
                codes["OK"] += 1
            except grpc.RpcError as error:
                codes[error.code().name] += 1
    return {"calls": count, "codes": dict(codes), "sent": sent, "received": received}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m isthmus.demo.grpc_echo")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve isthmus.demo.Echo")
    serve.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    client = commands.add_parser("call", help="call isthmus.demo.Echo and print the outcome")
    client.add_argument("target", help="host:port")
    client.add_argument("--count", type=int, default=1, help="calls, one at a time")
    client.add_argument("--stream", type=int, default=0, help="messages per Chat call")
    client.add_argument("--status", default="", help="a status name for Unary to answer")
    client.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    if args.command == "serve":
        server(args.port).wait_for_termination()
        return
    outcome = call(args.target, args.count, args.stream, args.status, args.timeout)
    print(json.dumps(outcome))


if __name__ == "__main__":
    main()
