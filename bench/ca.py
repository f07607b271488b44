"""Mesh CA: how fast isthmus.ca signs workload certificates, and how long a node's 500
pods wait for theirs at startup, against a real isthmusd.

    .venv/bin/python bench/ca.py --ca-keys RSA,ECDSA

1. Sign rate, in this process on one thread: `CertificateAuthority.sign_workload` on CSRs
   of RSA 2048 and ECDSA P-256 keys (the agent's `new_private_key`/`certificate_request`),
   for a CA whose own key is RSA 2048 (isthmusd's default) and, with --ca-keys RSA,ECDSA,
   ECDSA P-256. Measured with process CPU time over --sign-seconds CPU seconds per
   combination, and split into two steps timed alone: checking the CSR (parse, verify its
   signature) and the CA key's signature over a leaf's to-be-signed bytes.
2. Startup of --pods pods (500), end to end against a real isthmusd (`python -m
   isthmus.daemon` on a temporary home, `--ca-key-type` per CA key). The pods are reported
   as one node's (PUT /v1/node/pods) and each gets its token (POST /v1/node/tokens). Then
   every pod does at once what its agent does at start: make a fresh key and CSR, and call
   Istio's CreateCertificate on isthmusd's unix socket (grpc.aio, one channel per pod, the
   token as bearer metadata). Keys are made in --client-processes worker processes (one
   per core by default), so they compete with isthmusd for the cores as the agents of a
   starting node would. Reported: wall time until every pod holds a verified chain,
   isthmusd's CPU seconds, the key generation CPU of the clients (what a real startup pays
   on the node), the gRPC client's CPU, and latency per request (from the call to the
   chain; nearest-rank p50/p99). Then the CA alone: the same CSRs sent at once, with no key
   generation in the way. Both for RSA 2048 and ECDSA P-256 workload keys.

Everything is bounded (--timeout, SIGALRM, a deadline per call); isthmusd and the worker
processes are stopped and the temporary home removed at the end, also on failure. Only
unix sockets are used.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import platform
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import _ca_keys
import cryptography
import grpc
from _dp_report import table
from _proc import cpu_seconds, memory
from cryptography import x509
from cryptography.hazmat.backends.openssl import backend
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from isthmus.agent.certificates import KeyType, certificate_request, new_private_key
from isthmus.ca import CaOptions, CertificateAuthority
from isthmus.certificate_service import (
    AUTHORIZATION,
    BEARER,
    METHOD_PATH,
    IstioCertificateRequest,
    IstioCertificateResponse,
)
from isthmus.testing.daemon import DaemonProcess

TRUST_DOMAIN = "cluster.local"
NAMESPACE = "bench"
NODE = "bench-node"
ACCOUNTS = 25  # pods are spread over this many service accounts
KEY_TYPES: tuple[KeyType, ...] = ("RSA", "ECDSA")
KEY_NAMES = {"RSA": "RSA 2048", "ECDSA": "ECDSA P-256"}


class Timeout(Exception):
    pass


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise Timeout("the bench ran past --timeout")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Mesh CA: sign rate and a node's startup.")
    add = parser.add_argument
    add("--ca-keys", default="RSA", help="CA key types, comma-separated: RSA, ECDSA")
    add("--sign-seconds", type=float, default=3.0, help="CPU seconds per sign-rate row")
    add("--pods", type=int, default=500)
    add("--client-processes", type=int, default=os.cpu_count() or 2, help="key makers")
    add("--call-timeout", type=float, default=120.0, help="deadline of one CreateCertificate")
    add("--no-startup", action="store_true", help="only the sign rate (no isthmusd)")
    add("--timeout", type=float, default=600, help="hard limit for the whole run, seconds")
    add("--wait-quiet", type=float, default=0, help="first wait up to this long for low load")
    add("--quiet-load", type=float, default=0.5, help="1-minute load average deemed low")
    add("--keep-home", action="store_true", help="keep isthmusd's home (its log) under /tmp")
    args = parser.parse_args(argv)
    args.ca_key_list = [k.strip().upper() for k in args.ca_keys.split(",") if k.strip()]
    if not args.ca_key_list or any(k not in KEY_TYPES for k in args.ca_key_list):
        parser.error("--ca-keys: a comma-separated list of RSA and ECDSA")
    return args


def nearest_rank(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, -(-len(ordered) * q // 1))
    return ordered[int(rank) - 1]


def identity_of(account: str) -> str:
    return f"spiffe://{TRUST_DOMAIN}/ns/{NAMESPACE}/sa/{account}"


# --- 1. sign rate --------------------------------------------------------------------


@dataclass
class SignRate:
    ca_key: KeyType
    csr_key: KeyType
    signed: int
    cpu: float
    wall: float
    check_ms: float  # CSR parse + signature check, CPU ms per CSR
    ca_signature_ms: float  # the CA key's signature alone, CPU ms

    @property
    def per_cpu_second(self) -> float:
        return self.signed / self.cpu

    @property
    def ms(self) -> float:
        return 1000 * self.cpu / self.signed


def cpu_ms_per_call(call: Callable[[int], object], seconds: float) -> float:
    """CPU milliseconds per call of `call(i)`, over about `seconds` of process CPU time."""
    calls, started = 0, time.process_time()
    while calls < 3 or time.process_time() - started < seconds:
        call(calls)
        calls += 1
    return 1000 * (time.process_time() - started) / calls


def ca_signature(key: Any, data: bytes) -> bytes:
    """What the CA key does for one leaf: a SHA-256 signature (PKCS#1 v1.5 or ECDSA)."""
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(hashes.SHA256()))
    raise TypeError(f"a CA key can not be {type(key).__name__}")


def sign_rate(directory: Path, ca_key: KeyType, csr_key: KeyType, seconds: float) -> SignRate:
    ca_dir = directory / f"ca-{ca_key}"
    authority = CertificateAuthority.load_or_create(
        ca_dir, TRUST_DOMAIN, CaOptions(key_type=ca_key)
    )
    identity = identity_of("sign")
    csrs = [certificate_request(new_private_key(csr_key), identity) for _ in range(16)]
    leaf = b""
    for csr in csrs:  # warm-up
        leaf = authority.sign_workload(csr, identity, None)[0].encode()
    signed, wall, cpu = 0, time.perf_counter(), time.process_time()
    while signed < 3 or time.process_time() - cpu < seconds:
        authority.sign_workload(csrs[signed % len(csrs)], identity, None)
        signed += 1
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    encoded = [c.encode() for c in csrs]
    check_ms = cpu_ms_per_call(
        lambda i: x509.load_pem_x509_csr(encoded[i % len(encoded)]).is_signature_valid,
        seconds / 4,
    )
    key = serialization.load_pem_private_key((ca_dir / "ca-key.pem").read_bytes(), None)
    tbs = x509.load_pem_x509_certificate(leaf).tbs_certificate_bytes
    signature_ms = cpu_ms_per_call(lambda i: ca_signature(key, tbs), seconds / 4)
    return SignRate(ca_key, csr_key, signed, cpu, wall, check_ms, signature_ms)


# --- 2. startup against isthmusd -----------------------------------------------------


@dataclass
class Phase:
    ca_key: KeyType
    key_type: KeyType
    name: str
    pods: int
    wall: float = 0.0
    daemon_cpu: float = 0.0
    keygen_cpu: float = 0.0  # the worker processes, summed
    client_cpu: float = 0.0  # this process: gRPC client and bookkeeping
    latencies: list[float] = field(default_factory=list)  # seconds, answered calls only
    verified: int = 0
    errors: list[str] = field(default_factory=list)


@dataclass
class Node:
    """The pods reported to isthmusd and their tokens."""

    names: list[str]
    accounts: list[str]
    tokens: list[str]
    report_seconds: float
    token_seconds: float


def pod_object(name: str, uid: str, account: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NAMESPACE, "uid": uid, "labels": {"app": name}},
        "spec": {"nodeName": NODE, "serviceAccountName": account, "containers": []},
        "status": {"phase": "Pending", "startTime": "2026-12-02T00:00:00Z"},
    }


def report_node(daemon: DaemonProcess, count: int) -> Node:
    names = [f"pod-{i:04d}" for i in range(count)]
    accounts = [f"sa-{i % ACCOUNTS:02d}" for i in range(count)]
    uids = [secrets.token_hex(8) for _ in names]
    pods = [pod_object(n, u, a) for n, u, a in zip(names, uids, accounts, strict=True)]
    started = time.perf_counter()
    answer = daemon.client.put("/v1/node/pods", json={"node": NODE, "pods": pods})
    answer.raise_for_status()
    reported = time.perf_counter() - started
    tokens = []
    for name, uid, account in zip(names, uids, accounts, strict=True):
        body = {"namespace": NAMESPACE, "pod": name, "uid": uid, "serviceAccount": account}
        answer = daemon.client.post("/v1/node/tokens", json=body)
        answer.raise_for_status()
        tokens.append(str(answer.json()["token"]))
    return Node(names, accounts, tokens, reported, time.perf_counter() - started - reported)


async def create_certificate(socket: Path, csr: str, token: str, timeout: float) -> list[str]:
    """One agent's CreateCertificate, on its own channel (as each agent has its own)."""
    async with grpc.aio.insecure_channel(f"unix:{socket}") as channel:
        call = channel.unary_unary(
            METHOD_PATH,
            request_serializer=IstioCertificateRequest.SerializeToString,
            response_deserializer=IstioCertificateResponse.FromString,
        )
        answer = await call(
            IstioCertificateRequest(csr=csr),
            metadata=((AUTHORIZATION, BEARER + token),),
            timeout=timeout,
        )
    return list(answer.cert_chain)


def verified(csr: str, identity: str, chain: Sequence[str]) -> bool:
    """The chain's leaf is for the CSR's key and the pod's identity, signed by the root."""
    if len(chain) < 2:
        return False
    leaf = x509.load_pem_x509_certificate(chain[0].encode())
    root = x509.load_pem_x509_certificate(chain[-1].encode())
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    der = serialization.Encoding.DER
    request = x509.load_pem_x509_csr(csr.encode())
    try:
        leaf.verify_directly_issued_by(root)
    except (ValueError, TypeError):
        return False
    return san.get_values_for_type(x509.UniformResourceIdentifier) == [
        identity
    ] and leaf.public_key().public_bytes(der, spki) == request.public_key().public_bytes(der, spki)


async def run_phase(
    phase: Phase,
    daemon_pid: int,
    node: Node,
    socket: Path,
    csr_for: Callable[[int], Any],
    call_timeout: float,
) -> list[str]:
    """Every pod at once: `csr_for(i)` (awaitable: the CSR and the CPU it cost), then its
    CreateCertificate. Returns the CSRs (for the next phase)."""
    csrs: list[str] = [""] * phase.pods
    chains: list[list[str]] = [[] for _ in range(phase.pods)]

    async def one(i: int) -> None:
        csrs[i], keygen = await csr_for(i)
        phase.keygen_cpu += keygen
        sent = time.perf_counter()
        chains[i] = await create_certificate(socket, csrs[i], node.tokens[i], call_timeout)
        phase.latencies.append(time.perf_counter() - sent)

    daemon_before, client_before = cpu_seconds(daemon_pid), time.process_time()
    started = time.perf_counter()
    outcomes = await asyncio.gather(*(one(i) for i in range(phase.pods)), return_exceptions=True)
    phase.wall = time.perf_counter() - started
    phase.daemon_cpu = cpu_seconds(daemon_pid) - daemon_before
    phase.client_cpu = time.process_time() - client_before
    phase.errors = [repr(o) for o in outcomes if isinstance(o, BaseException)]
    phase.verified = sum(
        1
        for i in range(phase.pods)
        if chains[i] and verified(csrs[i], identity_of(node.accounts[i]), chains[i])
    )
    return csrs


async def startup_phases(
    ca_key: KeyType,
    daemon_pid: int,
    node: Node,
    socket: Path,
    pool: ProcessPoolExecutor,
    call_timeout: float,
) -> list[Phase]:
    loop = asyncio.get_running_loop()
    phases = []
    for key_type in KEY_TYPES:
        startup = Phase(ca_key, key_type, "startup: key, CSR, then the call", len(node.names))

        def make(i: int, key_type: KeyType = key_type) -> Any:
            identity = identity_of(node.accounts[i])
            return loop.run_in_executor(pool, _ca_keys.make_csr, key_type, identity)

        csrs = await run_phase(startup, daemon_pid, node, socket, make, call_timeout)
        burst = Phase(ca_key, key_type, "CA alone: the same CSRs at once", len(node.names))

        async def ready(i: int, csrs: list[str] = csrs) -> tuple[str, float]:
            return csrs[i], 0.0

        await run_phase(burst, daemon_pid, node, socket, ready, call_timeout)
        phases += [startup, burst]
    return phases


@dataclass
class DaemonFacts:
    ca_key: KeyType
    report_seconds: float
    token_seconds: float
    rss_mib: float
    hwm_mib: float


def startup(args: argparse.Namespace, ca_key: KeyType) -> tuple[list[Phase], DaemonFacts]:
    home = Path(tempfile.mkdtemp(prefix="ica-", dir="/tmp"))
    daemon = DaemonProcess(home, extra_args=["--ca-key-type", ca_key])
    context = multiprocessing.get_context("spawn")  # no fork of a process that ran gRPC
    pool = ProcessPoolExecutor(max_workers=args.client_processes, mp_context=context)
    try:
        for future in [pool.submit(_ca_keys.ready) for _ in range(args.client_processes)]:
            future.result(timeout=60)
        daemon.start(timeout=30)
        pid = int((home / "isthmusd.pid").read_text())
        node = report_node(daemon, args.pods)
        phases = asyncio.run(
            startup_phases(ca_key, pid, node, daemon.xds_socket, pool, args.call_timeout)
        )
        rss = memory(pid)
        facts = DaemonFacts(
            ca_key, node.report_seconds, node.token_seconds, rss.rss_mib, rss.hwm_mib
        )
        return phases, facts
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        daemon.stop()
        if args.keep_home:
            print(f"isthmusd's home kept: {home}", file=sys.stderr)
        else:
            shutil.rmtree(home, ignore_errors=True)


# --- report --------------------------------------------------------------------------


def sign_table(rows: Sequence[SignRate]) -> str:
    return table(
        [
            "CA key",
            "CSR key",
            "signed",
            "CPU s",
            "signs per CPU-second",
            "CPU ms per sign",
            "of it: CSR check ms",
            "of it: CA signature ms",
        ],
        [
            [
                KEY_NAMES[r.ca_key],
                KEY_NAMES[r.csr_key],
                str(r.signed),
                f"{r.cpu:.2f}",
                f"{r.per_cpu_second:.0f}",
                f"{r.ms:.3f}",
                f"{r.check_ms:.3f}",
                f"{r.ca_signature_ms:.3f}",
            ]
            for r in rows
        ],
    )


def startup_table(phases: Sequence[Phase]) -> str:
    return table(
        [
            "CA key",
            "workload key",
            "phase",
            "pods",
            "with verified chain",
            "wall s",
            "isthmusd CPU s",
            "isthmusd CPU ms per pod",
            "key generation CPU s",
            "gRPC client CPU s",
            "p50 ms",
            "p99 ms",
            "max ms",
            "failed",
        ],
        [
            [
                KEY_NAMES[p.ca_key],
                KEY_NAMES[p.key_type],
                p.name,
                str(p.pods),
                str(p.verified),
                f"{p.wall:.2f}",
                f"{p.daemon_cpu:.2f}",
                f"{1000 * p.daemon_cpu / p.pods:.2f}",
                f"{p.keygen_cpu:.2f}" if p.keygen_cpu else "-",
                f"{p.client_cpu:.2f}",
                f"{1000 * nearest_rank(p.latencies, 0.5):.1f}",
                f"{1000 * nearest_rank(p.latencies, 0.99):.1f}",
                f"{1000 * max(p.latencies, default=float('nan')):.1f}",
                str(len(p.errors)),
            ]
            for p in phases
        ],
    )


def facts() -> str:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    return (
        f"machine: cpus {os.cpu_count()}, cpu {model}, kernel {platform.release()}, "
        f"python {platform.python_version()}, cryptography {cryptography.__version__} "
        f"({backend.openssl_version_text()}), grpcio {grpc.__version__}"
    )


def _load(values: Sequence[float]) -> str:
    return "/".join(f"{v:.2f}" for v in values)


@contextlib.contextmanager
def time_limit(seconds: float) -> Iterator[None]:
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    deadline = time.monotonic() + args.wait_quiet
    while time.monotonic() < deadline and os.getloadavg()[0] >= args.quiet_load:
        time.sleep(5)
    command = " ".join([".venv/bin/python", "bench/ca.py", *(argv or sys.argv[1:])])
    loads = [os.getloadavg()]
    started = time.monotonic()
    rates: list[SignRate] = []
    phases: list[Phase] = []
    daemons: list[DaemonFacts] = []
    try:
        with time_limit(args.timeout), tempfile.TemporaryDirectory(prefix="ica-sign-") as tmp:
            for ca_key in args.ca_key_list:
                for csr_key in KEY_TYPES:
                    rates.append(sign_rate(Path(tmp), ca_key, csr_key, args.sign_seconds))
            loads.append(os.getloadavg())
            if not args.no_startup:
                for ca_key in args.ca_key_list:
                    found, daemon = startup(args, ca_key)
                    phases += found
                    daemons.append(daemon)
                    loads.append(os.getloadavg())
    except (Timeout, RuntimeError, OSError) as error:
        print(f"error: {error!r}", file=sys.stderr)
        return 1
    lines = [
        f"command: {command}",
        facts(),
        "load average (1/5/15 min): " + "; ".join(_load(v) for v in loads) + " (before, "
        "after the sign rate, after each isthmusd)",
        f"whole run {time.monotonic() - started:.1f} s",
        "",
        f"### Sign rate: sign_workload on one thread, {args.sign_seconds:g} CPU s per row",
        "",
        sign_table(rates),
    ]
    if phases:
        lines += [
            "",
            f"### Startup: {args.pods} pods of one node ask a real isthmusd at once "
            f"({args.client_processes} key-making processes)",
            "",
            startup_table(phases),
            "",
            *(
                f"isthmusd, {KEY_NAMES[d.ca_key]} CA: report of {args.pods} pods "
                f"{d.report_seconds:.2f} s, their tokens {d.token_seconds:.2f} s (one at a "
                f"time), VmRSS {d.rss_mib:.1f} MiB, VmHWM {d.hwm_mib:.1f} MiB"
                for d in daemons
            ),
        ]
    print("\n".join(lines))
    failed = [e for p in phases for e in p.errors] + [
        f"{p.name}: {p.pods - p.verified} chains missing or wrong"
        for p in phases
        if p.verified != p.pods
    ]
    for line in failed[:10]:
        print(f"error: {line}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
