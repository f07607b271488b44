"""isthmus.pilot.generators."""
