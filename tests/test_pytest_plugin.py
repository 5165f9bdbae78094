"""The pytest plugin for editors' test suites, run as an editor runs it (a pytest of its own, in a folder of its
own): the README's complete example with DeprecationWarnings as errors, a session that fails, one that is
killed — and after each, no simulator process left running."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "test_my_insi_client.py"
PROC = Path("/proc")
pytestmark = pytest.mark.skipif(not PROC.is_dir(), reason="the process check reads /proc (Linux)")


def example() -> str:
    """The complete example of the README (``examples/test_my_insi_client.py``)."""
    return EXAMPLE.read_text(encoding="utf-8")


def example_passes() -> str:
    """What pytest prints when every test of the example passes (counted from the example, never written twice)."""
    count = len(re.findall(r"^def test_", example(), re.M))
    return rf"\b{count} passed\b"


def simulators_under(root: Path) -> list[int]:
    """The simulator processes a session under ``root`` started (their evidence store is there)."""
    marker = f"ESANTE_EVIDENCE={root}".encode()
    found = []
    for entry in PROC.iterdir():
        try:
            environ = (entry / "environ").read_bytes() if entry.name.isdigit() else b""
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if any(variable.startswith(marker) for variable in environ.split(b"\0")):
            found.append(int(entry.name))
    return found


def editor_project(tmp_path: Path, **files: str) -> tuple[list[str], Path]:
    """An editor's test folder holding ``files``, and the pytest command that runs it (DeprecationWarnings are
    errors; the session's temporary files, the simulators' stores among them, go under the returned folder)."""
    tests = tmp_path / "tests"
    tests.mkdir()
    for name, text in files.items():
        (tests / name).write_text(text, encoding="utf-8")
    base = tmp_path / "session"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error::DeprecationWarning",
               f"--basetemp={base}", str(tests)]
    return command, base


def run_session(tmp_path: Path, **files: str) -> tuple[subprocess.CompletedProcess[str], list[int]]:
    command, base = editor_project(tmp_path, **files)
    try:
        done = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    finally:
        left = simulators_under(base)
        for pid in left:  # never leave them to the next test, whatever this one concludes
            os.kill(pid, signal.SIGKILL)
    return done, left


def test_the_readme_shows_the_example_the_suite_runs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    shown = re.search(r"<!-- pytest-example -->\n```python\n(.*?)```", readme, re.S)
    assert shown is not None and shown.group(1) == example()


def test_readme_example_passes_with_warnings_as_errors_and_leaves_no_process(tmp_path: Path) -> None:
    done, left = run_session(tmp_path, **{"test_example.py": example()})
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(example_passes(), done.stdout), done.stdout
    assert left == []


FAILING_SESSION = '''
import pytest

def test_wrong(esante_insi):
    """The fixtures report what the simulator really saw: a wrong expectation about it fails."""
    esante_insi.http.post("/lps", content=b"<x/>")
    assert esante_insi.exchanges() == []

@pytest.fixture
def broken(esante_psc):
    raise RuntimeError("the editor's own fixture breaks")

def test_broken(broken):
    pass

def test_fixtures_read_well(esante_simulator, esante_pki, esante_lab):
    insi = esante_simulator("insi")
    assert repr(insi).startswith("<esante insi simulator at https://127.0.0.1:")
    assert repr(esante_pki) == f"<esante test PKI: CA {esante_pki.ca_file}>" and esante_pki.ca_file.is_file()
    assert "insi https://127.0.0.1:" in repr(esante_lab) and "psc https://127.0.0.1:" in repr(esante_lab)
    with pytest.raises(KeyError, match="insi.soap12_envelope"):
        insi.judge("insi.no_such_check")
'''


def test_a_failed_session_leaves_no_process(tmp_path: Path) -> None:
    done, left = run_session(tmp_path, **{"test_failing.py": FAILING_SESSION})
    assert done.returncode == 1, done.stdout + done.stderr
    assert re.search(r"\b1 failed, 1 passed, 1 error\b", done.stdout), done.stdout
    assert left == []


KILLED_SESSION = '''
import time
from pathlib import Path

def test_until_killed(esante_insi, esante_psc):
    Path({ready!r}).write_text("started")
    time.sleep(120)
'''


@pytest.mark.slow
def test_a_killed_session_leaves_no_process(tmp_path: Path) -> None:
    """SIGKILL leaves the session no chance to clean up: the simulators notice they were orphaned and stop."""
    ready = tmp_path / "ready"
    command, base = editor_project(tmp_path, **{"test_killed.py": KILLED_SESSION.format(ready=str(ready))})
    session = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    try:
        deadline = time.monotonic() + 120
        while not ready.exists() and session.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert ready.exists(), "the session never started its simulators"
        assert len(simulators_under(base)) == 2
        session.kill()
        session.wait()
        deadline = time.monotonic() + 20
        while simulators_under(base) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert simulators_under(base) == []
    finally:
        session.kill()
        for pid in simulators_under(base):
            os.kill(pid, signal.SIGKILL)
