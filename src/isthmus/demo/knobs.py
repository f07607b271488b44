"""Turn a demo app's knobs from inside its pod: `python -m isthmus.demo.knobs latency=4`.

The tour runs it with `isthmus exec <pod> -- ...` to make one particular pod slow (a
Service address would pick any pod). It calls the app's /admin/knobs on 127.0.0.1, which
the pod's capture rules leave alone, and prints the knobs the app now has.
"""

from __future__ import annotations

import argparse
import urllib.request
from urllib.parse import urlencode


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="isthmus.demo.knobs")
    parser.add_argument("settings", nargs="*", metavar="NAME=VALUE", help="latency, error_rate")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    query = urlencode(dict(s.split("=", 1) for s in args.settings))
    url = f"http://127.0.0.1:{args.port}/admin/knobs?{query}"
    with urllib.request.urlopen(url, timeout=5) as answer:
        print(answer.read().decode())


if __name__ == "__main__":
    main()
