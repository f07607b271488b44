"""Reading -f arguments: files, sorted directories, stdin, and clear errors."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from isthmus.cli.errors import UserError
from isthmus.cli.sources import read_documents


def test_directory_gives_its_manifests_sorted(tmp_path: Path) -> None:
    for name in ("b.yml", "a.yaml", "c.json", "notes.txt", "d.yaml.bak"):
        (tmp_path / name).write_text(f"# {name}\n")
    (tmp_path / "sub.yaml").mkdir()  # a directory with a manifest-like name is skipped
    documents = read_documents([str(tmp_path)])
    assert [Path(d.source).name for d in documents] == ["a.yaml", "b.yml", "c.json"]
    assert documents[0].text == "# a.yaml\n"


def test_files_keep_command_line_order(tmp_path: Path) -> None:
    (tmp_path / "z.yaml").write_text("z")
    (tmp_path / "a.yaml").write_text("a")
    documents = read_documents([str(tmp_path / "z.yaml"), str(tmp_path / "a.yaml")])
    assert [d.text for d in documents] == ["z", "a"]


def test_dash_reads_stdin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("kind: Namespace\n"))
    (document,) = read_documents(["-"])
    assert document.source == "<stdin>"
    assert document.text == "kind: Namespace\n"


def test_missing_path_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(UserError) as info:
        read_documents([str(tmp_path / "nope.yaml")])
    assert info.value.lines == [f'error: the path "{tmp_path / "nope.yaml"}" does not exist']


def test_empty_directory_and_binary_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"no \.yaml, \.yml or \.json files"):
        read_documents([str(tmp_path)])
    (tmp_path / "bin.yaml").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(UserError, match="not UTF-8"):
        read_documents([str(tmp_path / "bin.yaml")])
