"""isthmus: an Istio-compatible service mesh with a Python control plane and Envoy data plane."""

__version__ = "0.1.0"
