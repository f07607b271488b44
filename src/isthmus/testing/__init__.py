"""isthmus.testing."""
