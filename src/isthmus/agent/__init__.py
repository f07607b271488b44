"""isthmus.agent."""
