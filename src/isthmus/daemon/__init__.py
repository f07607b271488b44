"""isthmus.daemon."""
