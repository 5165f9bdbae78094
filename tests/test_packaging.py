"""What installing esante-conformance puts in an editor's environment: one import package, ``esante`` (nothing
named ``simulators`` or ``reports`` at the top of site-packages), and a pytest plugin that loads beside an
editor's own packages of those names."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _source_copy(destination: Path) -> Path:
    """The checkout's files (tracked, or new and not ignored), copied, so that building leaves it untouched."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout
    files = [name for name in listed.split("\0") if name and (ROOT / name).is_file()]
    for name in files:
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((ROOT / name).read_bytes())
    return destination


@pytest.mark.slow
def test_pip_install_puts_one_top_level_package(tmp_path: Path) -> None:
    source = _source_copy(tmp_path / "src")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp_path / "dist"), str(source)], check=True, capture_output=True)
    [wheel] = (tmp_path / "dist").glob("*.whl")
    venv.create(tmp_path / "venv", with_pip=True)
    python = tmp_path / "venv" / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True,
                   capture_output=True)
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    ours = {p.name for p in site.iterdir()} - {p.name for p in _bare_site(tmp_path)}
    assert {name for name in ours if not name.endswith(".dist-info")} == {"esante"}
    installed = site / "esante"
    assert {"simulators", "harness", "reports", "scenarios"} <= {p.name for p in installed.iterdir()}
    assert (installed / "scenarios" / "insi" / "campaign.yaml").is_file(), "the campaigns ship with the package"
    assert (installed / "simulators" / "dmp" / "faults.yaml").is_file()


def _bare_site(tmp_path: Path) -> list[Path]:
    """What a fresh virtualenv's site-packages holds before anything is installed (pip, setuptools...)."""
    venv.create(tmp_path / "bare", with_pip=True)
    python = tmp_path / "bare" / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    return list(Path(site).iterdir())


def test_an_editor_project_with_its_own_simulators_and_reports_packages_runs_pytest(tmp_path: Path) -> None:
    """The plugin auto-loads (pytest11) in the editor's own test run: its imports must not shadow, nor be
    shadowed by, the editor's packages named like our folders."""
    project = tmp_path / "editor"
    for package, module in (("simulators", "core.py"), ("reports", "html.py"), ("harness", "runner.py")):
        (project / package).mkdir(parents=True)
        (project / package / "__init__.py").write_text("")
        (project / package / module).write_text(f"OWNER = 'the editor ({package})'\n")
    (project / "pytest.ini").write_text("[pytest]\npythonpath = .\n")
    (project / "test_editor.py").write_text(textwrap.dedent("""
        from harness.runner import OWNER as harness_owner
        from reports.html import OWNER as reports_owner
        from simulators.core import OWNER


        def test_the_editors_packages_and_our_plugin(request, esante_pki):
            assert OWNER == "the editor (simulators)" and reports_owner.endswith("(reports)")
            assert harness_owner.endswith("(harness)")
            assert request.config.pluginmanager.has_plugin("esante")
            assert esante_pki.ca_pem.startswith(b"-----BEGIN CERTIFICATE-----")
    """))
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"], cwd=project,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
