"""`--mesh-config` through the real CLI: a bad file is one line per problem naming the file
and field, exit 1, and nothing starts (a good one is used by the telemetry e2e mesh)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ISTHMUS = str(Path(sys.executable).parent / "isthmus")


def run(home: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ISTHMUS, "--home", str(home), *args], capture_output=True, text=True, timeout=timeout
    )


def test_a_bad_mesh_config_starts_nothing(tmp_path: Path) -> None:
    home = tmp_path / "home"
    bad = tmp_path / "mesh.yaml"
    bad.write_text("accessLogEncoding: XML\ndefaultConfig: {tracing: {sampling: 200}}\n")
    for command in (("up",), ("daemon",)):
        result = run(home, *command, "--mesh-config", str(bad))
        assert result.returncode == 1, result
        assert result.stderr.splitlines() == [
            f'error: {bad}: accessLogEncoding: must be one of TEXT, JSON (got "XML")',
            f"error: {bad}: defaultConfig.tracing.sampling: must be at most 100.0 (got 200)",
        ]
        assert not (home / "isthmusd.sock").exists()
        assert not (home / "settings.json").exists()
