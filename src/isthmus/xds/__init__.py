"""isthmus.xds."""
