"""Reading `-f` arguments (files, directories, `-`) into documents for the daemon."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from isthmus.cli.errors import UserError
from isthmus.daemon.client import Document

MANIFEST_SUFFIXES = (".yaml", ".yml", ".json")
STDIN = "-"
STDIN_SOURCE = "<stdin>"


def read_documents(filenames: Iterable[str]) -> list[Document]:
    """Every document named by `-f`, in order; directories give their manifests sorted."""
    documents: list[Document] = []
    for name in filenames:
        if name == STDIN:
            documents.append(Document(STDIN_SOURCE, sys.stdin.read()))
            continue
        path = Path(name)
        if path.is_dir():
            files = sorted(
                p for p in path.iterdir() if p.suffix in MANIFEST_SUFFIXES and p.is_file()
            )
            if not files:
                raise UserError(f'no .yaml, .yml or .json files in directory "{name}"')
            documents.extend(_read(p) for p in files)
        elif path.exists():
            documents.append(_read(path))
        else:
            raise UserError(f'the path "{name}" does not exist')
    return documents


def _read(path: Path) -> Document:
    try:
        return Document(str(path), path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    except OSError as exc:
        raise UserError(f"{path}: {exc.strerror or exc}") from exc


def first_object(documents: Iterable[Document]) -> tuple[str, str, str | None] | None:
    """(kind, name, namespace or None) of the first object in the documents, if one can be
    read cheaply; used to tell the user what to check after a timeout."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    for document in documents:
        try:
            for data in yaml.load_all(document.text, Loader=loader):
                found = _object_of(data)
                if found is not None:
                    return found
        except (yaml.YAMLError, RecursionError, ValueError):
            continue
    return None


def _object_of(data: Any) -> tuple[str, str, str | None] | None:
    if not isinstance(data, dict):
        return None
    if data.get("kind") == "List" and isinstance(data.get("items"), list):
        for item in data["items"]:
            found = _object_of(item)
            if found is not None:
                return found
        return None
    kind, meta = data.get("kind"), data.get("metadata")
    if not isinstance(kind, str) or not isinstance(meta, dict):
        return None
    name, namespace = meta.get("name"), meta.get("namespace")
    if not isinstance(name, str):
        return None
    return kind, name, namespace if isinstance(namespace, str) else None
