"""The tour's security act: the seed's section 6 on the running mesh.

mTLS is already on between sidecars (the callee's app sees the caller's SPIFFE id). A
Prometheus-like scraper without a sidecar scrapes inventory's pod in plaintext, and the
sidecars' own counters (`x mtls-readiness`) name it; the seed's STRICT policy then
refuses it (the seed's "503 after mTLS migration") while every meshed caller carries on;
a PERMISSIVE exception for the scraped workload brings it back. Last, the seed's
AuthorizationPolicy: order- and cart-service may GET /items and /items/*, nothing else.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from isthmus.demo.driver import DemoError, MeshDriver
from isthmus.demo.manifests import NAMESPACE
from isthmus.demo.seed import SEED_AUTHORIZATION_POLICY, SEED_PEER_AUTHENTICATION

MONITORING = "monitoring"
SCRAPER = f"""
apiVersion: v1
kind: Namespace
metadata:
  name: {MONITORING}
  labels: {{istio-injection: disabled}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: scraper, namespace: {MONITORING}}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: scraper}}}}
  template:
    metadata: {{labels: {{app: scraper}}}}
    spec:
      containers:
      - name: scraper
        image: prom/prometheus
        command: ["{sys.executable}", -m, isthmus.demo.app]
        env: [{{name: SERVICE, value: scraper}}]
        ports: [{{containerPort: 8080, name: http}}]
"""
EXCEPTION = f"""
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{name: inventory-scrape, namespace: {NAMESPACE}}}
spec:
  selector:
    matchLabels: {{app: inventory-service}}
  mtls: {{mode: PERMISSIVE}}
"""
INVENTORY = "http://inventory-service:8080"


class SecurityAct:
    def __init__(
        self,
        driver: MeshDriver,
        pods: Callable[[str], dict[str, Any]],
        say: Callable[[str], None],
    ) -> None:
        self.driver = driver
        self.pod = pods
        self.say = say

    def fetch(self, pod: dict[str, Any], url: str, method: str = "GET") -> dict[str, Any]:
        out = self.driver.exec(
            pod, [sys.executable, "-m", "isthmus.demo.fetch", url, "--method", method]
        )
        return dict(json.loads(out.strip().splitlines()[-1]))

    def _until(self, what: str, check: Callable[[], bool], timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise DemoError(f"{what} did not take effect within {timeout:.0f}s")
            time.sleep(0.5)

    def run(self) -> dict[str, Any]:
        self._reset()
        summary: dict[str, Any] = {}
        order, search = self.pod("order-service"), self.pod("search-service")
        inventory = self.pod("inventory-v1")
        answer = self.fetch(order, f"{INVENTORY}/items")
        peer = str(answer["body"].get("peer", "")) if isinstance(answer["body"], dict) else ""
        identity = peer.partition("URI=")[2].partition(";")[0]
        summary["mtls_peer"] = identity
        self.say(
            f"• mTLS between sidecars: inventory's app sees its caller as {identity} "
            "(x-forwarded-client-cert, verified by its sidecar); certificates: "
            f"`isthmus proxy-config secret {inventory['name']} -n {NAMESPACE}`"
        )

        self.driver.apply(SCRAPER, "scraper")
        scraper = self.driver.wait_ready(MONITORING, {"scraper": 1}, timeout=60)[0]
        scrape = f"http://{inventory['ip']}:8080/metrics"
        before = self.fetch(scraper, scrape)["status"]
        readiness = self.driver.cli("x", "mtls-readiness", "-n", NAMESPACE)
        listed = scraper["name"] in readiness
        summary["scraper_before"] = before
        summary["readiness_lists_scraper"] = listed
        self.say(
            f"• a scraper without a sidecar ({MONITORING}/{scraper['name']}) scrapes inventory's "
            f"pod in plaintext: {before}. `isthmus x mtls-readiness -n {NAMESPACE}` "
            f"{'names it' if listed else 'does not name it'} from the sidecars' own counters"
        )

        self.driver.apply(SEED_PEER_AUTHENTICATION, "seed-peer-authentication")
        self._until("STRICT", lambda: self.fetch(scraper, scrape)["status"] == 0)
        meshed = [self.fetch(order, f"{INVENTORY}/items")["status"] for _ in range(5)]
        summary["scraper_strict"] = 0
        summary["meshed_strict"] = meshed
        self.say(
            "• the seed's PeerAuthentication (STRICT): the scraper's plaintext connection is "
            f"refused (its 503 after migration); order-service, over mTLS: {meshed}"
        )
        self.driver.apply(EXCEPTION, "inventory-scrape-exception")
        self._until("the exception", lambda: self.fetch(scraper, scrape)["status"] == 200)
        summary["scraper_exception"] = 200
        self.say(
            "• fix: a PERMISSIVE PeerAuthentication for inventory-service only; the scraper "
            "gets in again (200), everything else stays STRICT"
        )

        self.driver.apply(SEED_AUTHORIZATION_POLICY, "seed-authorization-policy")
        self._until("the policy", lambda: self.fetch(search, f"{INVENTORY}/items")["status"] == 403)
        decisions = {
            "order GET /items": self.fetch(order, f"{INVENTORY}/items")["status"],
            "order GET /items/42": self.fetch(order, f"{INVENTORY}/items/42")["status"],
            "order POST /items": self.fetch(order, f"{INVENTORY}/items", "POST")["status"],
            "order GET /admin": self.fetch(order, f"{INVENTORY}/admin")["status"],
            "search GET /items": self.fetch(search, f"{INVENTORY}/items")["status"],
        }
        summary["authorization"] = decisions
        self.say(
            "• the seed's AuthorizationPolicy: "
            + ", ".join(f"{k} {v}" for k, v in decisions.items())
            + f" (403 is Envoy's 'RBAC: access denied'); `isthmus x authz check "
            f"{inventory['name']} -n {NAMESPACE}` shows what the sidecar enforces"
        )
        return summary

    def _reset(self) -> None:
        """A reused mesh may hold an earlier run's policies: start from none."""
        for kind, name in (
            ("authorizationpolicy", "inventory-authz"),
            ("peerauthentication", "inventory-scrape"),
            ("peerauthentication", "default"),
        ):
            with contextlib.suppress(DemoError):  # not there: nothing to delete
                self.driver.cli("delete", kind, name, "-n", NAMESPACE)
