"""isthmus.pilot.envoy."""
