"""Reading `-f` arguments (files, directories, `-`) into documents for the daemon."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path

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
