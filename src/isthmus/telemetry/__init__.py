"""isthmus.telemetry."""
