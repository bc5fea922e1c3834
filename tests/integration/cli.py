"""Running the real CLI in-process from integration tests, and writing what it reads."""

from __future__ import annotations

from pathlib import Path

import pytest

from respaldo.cli.main import invoke


class RunsCli:
    """Mixed into a test's setup dataclass that has ``config`` and ``capsys``."""

    config: Path
    capsys: pytest.CaptureFixture[str]

    def run(self, *args: str) -> tuple[int, str, str]:
        """``respaldo --config CONFIG ARGS…``: (exit status, stdout, stderr)."""
        self.capsys.readouterr()
        code = invoke(["--config", str(self.config), *args])
        out, err = self.capsys.readouterr()
        return code, out, err

    def ok(self, *args: str) -> tuple[str, str]:
        """The same, asserting success: (stdout, stderr)."""
        code, out, err = self.run(*args)
        assert code == 0, f"{args}: exit {code}\n{out}\n{err}"
        return out, err


def secret_file(path: Path, text: str) -> Path:
    """A 0600 file holding one secret and a newline (as respaldo's *_file settings want)."""
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path
