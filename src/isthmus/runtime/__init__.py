"""The local orchestrator: Deployments become pods (network namespaces with an Envoy
sidecar and the containers' processes), with readiness, restarts and rolling updates."""
