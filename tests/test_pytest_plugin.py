"""The pytest plugin for editors' test suites: the README's complete example, run as an editor would run it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "test_my_insi_client.py"


def example() -> str:
    """The complete example of the README (``examples/test_my_insi_client.py``)."""
    return EXAMPLE.read_text(encoding="utf-8")


def test_readme_example_passes_with_simulator_processes(tmp_path: Path) -> None:
    (tmp_path / "test_example.py").write_text(example())
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"\b3 passed\b", run.stdout), run.stdout


def test_a_failing_expectation_fails_the_editor_test(tmp_path: Path) -> None:
    """The fixtures report what the simulator really saw: a wrong expectation about it must fail."""
    (tmp_path / "test_wrong.py").write_text(
        "import httpx, ssl\n"
        "def test_wrong(esante_insi):\n"
        "    tls = ssl.create_default_context(cafile=esante_insi.ca_file)\n"
        "    httpx.post(esante_insi.url + '/lps', content=b'<x/>', verify=tls)\n"
        "    assert esante_insi.exchanges() == []\n")
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert run.returncode == 1 and "1 failed" in run.stdout, run.stdout + run.stderr
