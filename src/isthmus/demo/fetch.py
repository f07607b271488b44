"""`python -m isthmus.demo.fetch URL [--method M] [-H 'name: value']`: one request from
inside a pod, its
outcome as one JSON line {status, body} (status 0 and the error when the connection
failed or was refused), for the demo and the tests to show what a caller sees."""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request
from typing import Any


def fetch(
    url: str, method: str = "GET", timeout: float = 5.0, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            raw = answer.read()
            status = answer.status
    except urllib.error.HTTPError as error:
        return {"status": error.code, "body": error.read().decode(errors="replace")}
    except (OSError, ValueError) as error:
        return {"status": 0, "body": f"{type(error).__name__}: {error}"}
    try:
        body: Any = json.loads(raw or b"{}")
    except ValueError:
        body = raw.decode(errors="replace")
    return {"status": status, "body": body}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m isthmus.demo.fetch")
    parser.add_argument("url")
    parser.add_argument("--method", default="GET")
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("-H", "--header", action="append", default=[], help="'name: value'")
    args = parser.parse_args()
    headers = dict(
        (name.strip(), value.strip()) for name, _, value in (h.partition(":") for h in args.header)
    )
    print(json.dumps(fetch(args.url, args.method, args.timeout, headers)))


if __name__ == "__main__":
    main()
