"""Moved to isthmus.home (the node runtime needs it too); kept while callers move."""

from isthmus.home import DEFAULT_HOME, HOME_ENV, MeshHome, resolve_home

__all__ = ["DEFAULT_HOME", "HOME_ENV", "MeshHome", "resolve_home"]
