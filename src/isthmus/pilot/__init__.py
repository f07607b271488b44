"""Translation, pure and I/O-free: (mesh snapshot, proxy) -> Envoy resources."""
