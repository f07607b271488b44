"""isthmus.runtime."""
