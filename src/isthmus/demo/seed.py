"""The seed article's inventory-service DestinationRule and VirtualService, verbatim."""

from __future__ import annotations

from importlib.resources import files

SEED_YAML = files("isthmus.demo").joinpath("seed-inventory.yaml").read_text()
