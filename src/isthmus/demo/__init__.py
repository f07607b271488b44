"""isthmus.demo."""
