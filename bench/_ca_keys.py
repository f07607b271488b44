"""What a sidecar agent does before it asks the CA: a fresh private key and a CSR for its
SPIFFE id, with the agent's own functions. Runs in the CA bench's worker processes, so it
is importable on its own (multiprocessing spawns its workers)."""

from __future__ import annotations

import time

from isthmus.agent.certificates import KeyType, certificate_request, new_private_key


def make_csr(key_type: KeyType, identity: str) -> tuple[str, float]:
    """A new key's CSR for `identity`, and the CPU seconds this process spent on it."""
    started = time.process_time()
    csr = certificate_request(new_private_key(key_type), identity)
    return csr, time.process_time() - started


def ready() -> int:
    """A no-op a worker answers once it has imported everything (the pool's warm-up)."""
    return 0
