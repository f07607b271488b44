"""isthmus.model."""
