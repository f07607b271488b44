"""Envoy telemetry configuration: Istio's standard metrics, peer metadata, access logs,
tracing."""
