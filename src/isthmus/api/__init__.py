"""Typed models and validation of the YAML kinds isthmus accepts.

This package owns the user-facing schema: it turns YAML text into typed, validated
objects and reports every problem as one line naming file, document and field path.
It imports nothing else of isthmus.
"""
