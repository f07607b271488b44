"""`python -m isthmus.testing.tls_server`: an HTTPS server that terminates TLS itself, the
kind of app a gateway's TLS passthrough reaches (tests run it as a pod's container).

It serves on $PORT (default 8443) with the PEM certificate chain and key in $TLS_CERT and
$TLS_KEY and answers every GET with JSON {"service", "sni"}: `sni` is the server name the
client asked for, as this server (not a proxy in front of it) saw it.
"""

from __future__ import annotations

import json
import os
import ssl
import tempfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SERVICE = os.environ.get("SERVICE", "tls-server")


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # quiet
        return

    def do_GET(self) -> None:
        body = json.dumps({"service": SERVICE, "sni": getattr(self.connection, "sni", "")})
        data = body.encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as scratch:
        cert, key = os.path.join(scratch, "cert.pem"), os.path.join(scratch, "key.pem")
        with open(cert, "w") as out:
            out.write(os.environ["TLS_CERT"])
        with open(key, "w") as out:
            out.write(os.environ["TLS_KEY"])
        context.load_cert_chain(cert, key)

    def remember(sock: ssl.SSLObject, name: str | None, _: ssl.SSLContext) -> None:
        sock.sni = name or ""  # type: ignore[attr-defined]

    context.sni_callback = remember  # type: ignore[assignment]
    return context


def main() -> None:
    server = ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8443"))), _Handler)
    server.socket = _context().wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
