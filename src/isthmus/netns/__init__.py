"""isthmus.netns."""
