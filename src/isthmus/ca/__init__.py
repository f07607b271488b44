"""isthmus.ca."""
