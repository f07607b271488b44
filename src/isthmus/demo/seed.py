"""The seed article's YAML, verbatim: inventory-service's DestinationRule and
VirtualService, and its security section (PeerAuthentication, AuthorizationPolicy)."""

from __future__ import annotations

from importlib.resources import files

SEED_YAML = files("isthmus.demo").joinpath("seed-inventory.yaml").read_text()
SEED_SECURITY_YAML = files("isthmus.demo").joinpath("seed-security.yaml").read_text()
# The security section's two documents: STRICT mTLS, then the authorization policy.
SEED_PEER_AUTHENTICATION, SEED_AUTHORIZATION_POLICY = SEED_SECURITY_YAML.split("\n---\n")
