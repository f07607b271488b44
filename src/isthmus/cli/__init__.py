"""isthmus.cli."""
