"""Adapts isthmus.netns.MeshNetwork to what a Pod needs (runtime.pod.PodNetworking)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from isthmus.netns import MeshNetwork, capture_config_from_annotations, exec_argv, render_rules


class NetnsPodNetworking:
    def __init__(self, network: MeshNetwork) -> None:
        self.network = network

    async def add_pod(self, pod: str) -> tuple[str, str]:
        created = await self.network.add_pod(pod)
        return created.netns, created.ip

    async def remove_pod(self, pod: str) -> None:
        await self.network.remove_pod(pod)

    async def has_pod(self, pod: str) -> bool:
        return await self.network.has_pod(pod)

    async def write_hosts(self, pod: str, entries: Mapping[str, Sequence[str]]) -> None:
        await self.network.write_hosts(pod, entries)

    async def apply_capture(
        self, pod: str, annotations: Mapping[str, str], ports: Sequence[int]
    ) -> None:
        config = capture_config_from_annotations(
            annotations, ports, chain_prefix=self.network.chain_prefix
        )
        await self.network.apply_capture(pod, render_rules(config))

    def exec_argv(self, netns: str, argv: Sequence[str]) -> list[str]:
        return exec_argv(netns, argv)
