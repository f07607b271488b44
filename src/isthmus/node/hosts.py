"""The pods' /etc/hosts entries, as isthmusd's mesh resolves names (its node API).

Kept between refreshes, so pods started while isthmusd is away still get the last known
names, and a failed refresh leaves the files as they were.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from isthmus.node.apiclient import ApiClient, ControlPlaneUnavailable

log = logging.getLogger("isthmus.node")


class HostsTable:
    def __init__(self, api: ApiClient, namespaces: Callable[[], Iterable[str]]) -> None:
        self._api = api
        self._namespaces = namespaces
        self._entries: dict[str, dict[str, list[str]]] = {}

    def entries(self, namespace: str) -> dict[str, list[str]]:
        return self._entries.get(namespace, {})

    async def refresh(self) -> bool | None:
        """Fetch the entries of every namespace the node has pods or Deployments in: None if
        isthmusd could not be asked, else whether anything changed."""
        namespaces = set(self._namespaces())
        if not namespaces:
            return False
        try:
            entries = await self._api.hosts(namespaces)
        except ControlPlaneUnavailable as exc:
            log.debug("node hosts_refresh_failed error=%s", exc)
            return None
        changed = entries != self._entries
        self._entries = entries
        return changed
