"""`isthmus daemon` takes the mesh settings `isthmus up` takes; an unusable plugged-in
CA is one clear error and exit 1, before anything is served."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from isthmus.cli.main import cli


def test_daemon_refuses_an_incomplete_plugged_in_ca(tmp_path: Path) -> None:
    cacerts = tmp_path / "cacerts"
    cacerts.mkdir()
    (cacerts / "ca-cert.pem").write_text("not a certificate\n")

    result = CliRunner().invoke(
        cli,
        ["--home", str(tmp_path / "home"), "daemon", "--cacerts", str(cacerts)],
    )

    assert result.exit_code == 1, result.output
    assert "the mesh CA is unusable" in result.output
    assert not (tmp_path / "home" / "isthmusd.sock").exists()


def test_daemon_and_up_offer_the_same_mesh_settings() -> None:
    runner = CliRunner()
    for command in ("daemon", "up"):
        text = runner.invoke(cli, [command, "--help"]).output
        for flag in ("--trust-domain", "--root-namespace", "--path-normalization", "--cacerts"):
            assert flag in text, (command, flag)
