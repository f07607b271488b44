"""A mesh's pod network: one node namespace with a bridge, one namespace per pod.

```
  <mesh>-node   bridge <short>-br (gateway = pod CIDR's first address), veths <short><hash>
  <mesh>-<pod>  eth0 (pod IP/prefix) + lo; routes: pod CIDR on eth0, service CIDR via gateway
```

Nothing is ever created in the root namespace: veths are created from inside the node
namespace with their pod end placed straight into the pod namespace, every command names
its namespace (`ip -n NS`), and the root namespace is only ever read (its addresses, to
refuse overlapping CIDRs). No namespace has a default route, and IPv6 is disabled in every
mesh namespace, so the IPv4 capture rules can not be bypassed and nothing reaches outside.

The kernel is the state: pods, their IPs and names (kept as the links' alias) are read back
from the namespaces that exist, so a restarted daemon sees what a previous one made and
`teardown` removes a crashed run's leftovers by the mesh's name prefix.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from isthmus.netns import names
from isthmus.netns.addressing import (
    NetworkConfig,
    NetworkConfigError,
    allocate_pod_ip,
    check_host_overlap,
    parse_ip_addr_json,
    validate_pod_ip,
)
from isthmus.netns.commands import CommandFailed, CommandResult, run, tool_path
from isthmus.netns.hosts import ETC_NETNS, RESOLV_CONF, pod_etc_dir, render_hosts, write_in_place

log = logging.getLogger("isthmus.netns")

NETNS_RUN_DIR = Path("/run/netns")
POD_INTERFACE = "eth0"
_STOP_GRACE = 2.0
_POLL = 0.05


@dataclass(frozen=True)
class PodNetwork:
    """A pod's network as it exists: its namespace, address and node-side veth."""

    pod: str
    netns: str
    ip: str
    veth: str


class TeardownIncomplete(RuntimeError):
    """Some of the mesh's namespaces or files could not be removed; the message lists them."""


def exec_argv(
    netns_name: str, argv: Sequence[str], uid: int | None = None, gid: int | None = None
) -> list[str]:
    """The argv that runs argv inside a pod's namespace, optionally as uid/gid (via setpriv).

    `ip netns exec` also bind-mounts the pod's /etc/netns files (hosts, resolv.conf).
    """
    if not netns_name or "/" in netns_name or netns_name in (".", ".."):
        raise ValueError(f"invalid network namespace name {netns_name!r}")
    if not argv:
        raise ValueError("empty command")
    command = [tool_path("ip"), "netns", "exec", netns_name]
    if uid is not None or gid is not None:
        command.append(tool_path("setpriv"))
        for flag, ident in (("--reuid", uid), ("--regid", gid)):
            if ident is not None:
                if ident < 0:
                    raise ValueError(f"{flag} {ident} is negative")
                command += [flag, str(ident)]
        command.append("--clear-groups")
    return [*command, *argv]


def existing_netns() -> list[str]:
    """Names of all named network namespaces (what `ip netns list` shows)."""
    try:
        return sorted(os.listdir(NETNS_RUN_DIR))
    except FileNotFoundError:
        return []


async def _ip(netns: str, *args: str, check: bool = True) -> CommandResult:
    """`ip -n NETNS ...`: every link, address and route command names its namespace."""
    return await run(["ip", "-n", netns, *args], check=check)


async def _ip_batch(netns: str, lines: Sequence[str]) -> None:
    await run(["ip", "-n", netns, "-batch", "-"], input=("\n".join(lines) + "\n").encode())


async def _disable_ipv6(netns: str) -> None:
    await run(
        exec_argv(
            netns,
            [
                tool_path("sysctl"),
                "-q",
                "-e",
                "-w",
                "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1",
            ],
        )
    )


async def _netns_pids(netns: str) -> list[int]:
    result = await run(["ip", "netns", "pids", netns], check=False)
    return [int(word) for word in result.text.split() if word.isdigit()]


async def _stop_processes(netns: str) -> None:
    """Stop processes still running in a namespace (TERM, then KILL after a grace period).

    A namespace with processes in it outlives `ip netns del`; these are the leftovers of a
    crashed daemon or of a runtime that did not stop its pod's processes first.
    """
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = await _netns_pids(netns)
        if not pids:
            return
        log.info(
            "stopping_processes netns=%s pids=%s signal=%s",
            netns,
            ",".join(map(str, pids)),
            sig.name,
        )
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        for _ in range(int(_STOP_GRACE / _POLL)):
            await asyncio.sleep(_POLL)
            if not await _netns_pids(netns):
                return


class MeshNetwork:
    """Creates, lists and removes the namespaces, links and capture rules of one mesh."""

    def __init__(self, config: NetworkConfig) -> None:
        self.config = config
        self.mesh = config.mesh
        self.node_netns = names.node_netns(config.mesh)
        self.bridge = names.bridge_name(config.mesh)
        self.chain_prefix = names.chain_prefix(config.mesh)
        self._lock = asyncio.Lock()
        self._last_ip: IPv4Address | None = None
        # Pods by name, loaded from the kernel on first use and kept current by add/remove,
        # so allocating an IP does not re-read every namespace.
        self._known: dict[str, PodNetwork] | None = None

    def netns_of(self, pod_name: str) -> str:
        """The namespace name of a pod (whether or not it exists)."""
        return names.pod_netns(self.mesh, pod_name)

    async def ensure(self) -> None:
        """Create the node namespace and bridge if missing; idempotent."""
        async with self._lock:
            host = await run(["ip", "-j", "-4", "addr", "show"])  # root namespace: read only
            check_host_overlap(self.config, parse_ip_addr_json(host.text))
            if self.node_netns not in existing_netns():
                await run(["ip", "netns", "add", self.node_netns])
            await _disable_ipv6(self.node_netns)
            gateway = f"{self.config.gateway}/{self.config.pod_network.prefixlen}"
            lines = ["link set lo up"]
            shown = await _ip(
                self.node_netns, "-j", "-4", "addr", "show", "dev", self.bridge, check=False
            )
            if shown.returncode != 0:
                lines.append(f"link add {self.bridge} type bridge")
            else:
                present = {str(a) for a in parse_ip_addr_json(shown.text)} - {gateway}
                if present:
                    raise NetworkConfigError(
                        f"mesh {self.mesh} already has bridge addresses {sorted(present)}, "
                        f"not pod_cidr {self.config.pod_cidr}; tear the mesh down first"
                    )
            lines += [f"addr replace {gateway} dev {self.bridge}", f"link set {self.bridge} up"]
            await _ip_batch(self.node_netns, lines)
            log.info(
                "node_ready netns=%s bridge=%s gateway=%s", self.node_netns, self.bridge, gateway
            )

    async def add_pod(self, pod_name: str, ip: str | None = None) -> PodNetwork:
        """Create a pod's namespace, veth and address; returns the existing one if present."""
        async with self._lock:
            netns = self.netns_of(pod_name)
            if self.node_netns not in existing_netns():
                raise NetworkConfigError(f"mesh {self.mesh} has no node namespace: call ensure()")
            existing = await self._read_pod(netns)
            if existing is not None:
                if ip is None or ip == existing.ip:
                    return existing
                raise NetworkConfigError(
                    f"pod {pod_name} already has IP {existing.ip}, not {ip}; remove it first"
                )
            if netns in existing_netns():  # a half-made pod from a failed or crashed run
                await self._remove(pod_name)
            known = await self._known_pods()
            used = {IPv4Address(p.ip) for p in known.values() if p.pod != pod_name}
            if ip is None:
                address = allocate_pod_ip(self.config, used, self._last_ip)
            else:
                address = validate_pod_ip(self.config, ip, used)
            pod = PodNetwork(pod_name, netns, str(address), names.veth_name(self.mesh, pod_name))
            try:
                await self._create(pod)
            except BaseException:
                await asyncio.shield(self._remove_quietly(pod_name))
                raise
            self._last_ip = address
            known[pod_name] = pod
            log.info(
                "pod_network_ready pod=%s netns=%s ip=%s veth=%s", pod.pod, netns, pod.ip, pod.veth
            )
            return pod

    async def _create(self, pod: PodNetwork) -> None:
        config = self.config
        await run(["ip", "netns", "add", pod.netns])
        await _disable_ipv6(pod.netns)
        await _ip_batch(
            self.node_netns,
            [
                f"link add {pod.veth} type veth peer name {POD_INTERFACE} netns {pod.netns}",
                f"link set {pod.veth} alias {pod.pod}",
                f"link set {pod.veth} master {self.bridge}",
                f"link set {pod.veth} up",
            ],
        )
        await _ip_batch(
            pod.netns,
            [
                "link set lo up",
                f"addr add {config.pod_interface(IPv4Address(pod.ip))} dev {POD_INTERFACE}",
                f"link set {POD_INTERFACE} alias {pod.pod}",
                f"link set {POD_INTERFACE} up",
                f"route add {config.service_network} via {config.gateway} dev {POD_INTERFACE}",
            ],
        )
        await asyncio.to_thread(self._write_etc, pod.pod, pod.netns, {})

    async def has_pod(self, pod_name: str) -> bool:
        """Whether the pod's namespace exists with its address (as add_pod made it)."""
        return await self._read_pod(self.netns_of(pod_name)) is not None

    async def remove_pod(self, pod_name: str) -> None:
        """Remove a pod's veth, namespace and /etc/netns files; absent parts are fine.

        Processes still running in the namespace are stopped first (TERM, then KILL): the
        runtime should have stopped them already.
        """
        async with self._lock:
            await self._remove(pod_name)

    async def _remove(self, pod_name: str) -> None:
        netns = self.netns_of(pod_name)
        if self.node_netns in existing_netns():
            veth = names.veth_name(self.mesh, pod_name)
            await _ip(self.node_netns, "link", "del", veth, check=False)
        if netns in existing_netns():
            await _stop_processes(netns)
            await run(["ip", "netns", "del", netns])
        await asyncio.to_thread(shutil.rmtree, pod_etc_dir(netns), True)
        if self._known is not None:
            self._known.pop(pod_name, None)
        log.info("pod_network_removed pod=%s netns=%s", pod_name, netns)

    async def _remove_quietly(self, pod_name: str) -> None:
        try:
            await self._remove(pod_name)
        except (CommandFailed, OSError) as exc:
            log.warning("pod_cleanup_failed pod=%s error=%r", pod_name, str(exc))

    async def write_hosts(self, pod_name: str, entries: Mapping[str, Sequence[str]]) -> None:
        """Set the pod's /etc/hosts to localhost plus `entries` (IP -> names), in place.

        Processes already running in the pod see the new content on their next lookup.
        """
        netns = self.netns_of(pod_name)
        if netns not in existing_netns():
            raise NetworkConfigError(f"pod {pod_name} has no network (namespace {netns})")
        await asyncio.to_thread(self._write_etc, pod_name, netns, entries)

    @staticmethod
    def _write_etc(pod_name: str, netns: str, entries: Mapping[str, Sequence[str]]) -> None:
        directory = pod_etc_dir(netns)
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o755)
        write_in_place(directory / "hosts", render_hosts(pod_name, entries))
        write_in_place(directory / "resolv.conf", RESOLV_CONF)

    async def apply_capture(self, pod_name: str, rules_text: str) -> None:
        """Replace the pod's nat table with rules_text in one iptables-restore commit."""
        netns = self.netns_of(pod_name)
        if netns not in existing_netns():
            raise NetworkConfigError(f"pod {pod_name} has no network (namespace {netns})")
        await run(exec_argv(netns, [tool_path("iptables-restore")]), input=rules_text.encode())
        log.info("capture_applied pod=%s netns=%s", pod_name, netns)

    async def pods(self) -> list[PodNetwork]:
        """The pods of this mesh whose network exists, sorted by pod name."""
        async with self._lock:
            pods = await self._pods()
            self._known = {pod.pod: pod for pod in pods}
            return pods

    async def _known_pods(self) -> dict[str, PodNetwork]:
        if self._known is None:
            self._known = {pod.pod: pod for pod in await self._pods()}
        return self._known

    async def _pods(self) -> list[PodNetwork]:
        candidates = [
            name
            for name in existing_netns()
            if names.owns_netns(self.mesh, name) and name != self.node_netns
        ]
        found = await asyncio.gather(*(self._read_pod(name) for name in candidates))
        return sorted((pod for pod in found if pod is not None), key=lambda p: p.pod)

    async def _read_pod(self, netns: str) -> PodNetwork | None:
        """The pod in a namespace, from eth0's alias (pod name) and address; None if incomplete."""
        link = await _ip(netns, "-j", "link", "show", "dev", POD_INTERFACE, check=False)
        if link.returncode != 0:
            return None
        alias = (json.loads(link.text or "[]") or [{}])[0].get("ifalias")
        if not alias:
            return None
        try:
            if names.pod_netns(self.mesh, alias) != netns:
                return None
        except ValueError:
            return None
        addr = await _ip(netns, "-j", "-4", "addr", "show", "dev", POD_INTERFACE, check=False)
        addresses = parse_ip_addr_json(addr.text) if addr.returncode == 0 else []
        if not addresses:
            return None
        ip = addresses[0].ip
        return PodNetwork(alias, netns, str(ip), names.veth_name(self.mesh, alias))

    async def teardown(self) -> None:
        """Remove every namespace and /etc/netns directory carrying this mesh's prefix.

        Also removes what a crashed run left behind, so `up` can call it first. Processes
        still running in those namespaces are stopped.
        """
        async with self._lock:
            owned = [n for n in existing_netns() if names.owns_netns(self.mesh, n)]
            # Pods first, the node (which holds the veths) last.
            owned.sort(key=lambda n: n == self.node_netns)
            problems: list[str] = []
            for netns in owned:
                try:
                    await _stop_processes(netns)
                    await run(["ip", "netns", "del", netns])
                except CommandFailed as exc:
                    problems.append(str(exc))
            prefix = names.netns_prefix(self.mesh)
            etc_dirs = sorted(ETC_NETNS.glob(f"{prefix}*"))
            for directory in etc_dirs:
                try:
                    await asyncio.to_thread(shutil.rmtree, directory)
                except OSError as exc:
                    problems.append(f"{directory}: {exc}")
            self._last_ip = None
            self._known = None
            if problems:
                raise TeardownIncomplete(
                    f"mesh {self.mesh} teardown incomplete: " + "; ".join(problems)
                )
            log.info("mesh_network_removed mesh=%s namespaces=%d", self.mesh, len(owned))
