"""``esante lab`` and ``esante token`` as a person uses them: a lab of PSC and MSSanté in the foreground, its state
file, a token from it, and a standard IMAP client (Python's imaplib) opening the professional's mailbox with it."""

from __future__ import annotations

import base64
import imaplib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from esante.harness.lab import Lab, LabState, xoauth2
from esante.simulators.core.pki import client_ssl_context

CLAIRE = "claire.vasseur@medecin.mssante.test"  # PS001's personal mailbox
ESANTE = [sys.executable, "-m", "esante.harness.cli"]


def _wait_for(path: Path, lab: subprocess.Popen[bytes], timeout: float = 60) -> LabState:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size:
            return LabState.read(path)
        if lab.poll() is not None:
            raise AssertionError(f"esante lab exited with {lab.returncode}: {lab.stdout.read().decode()}")  # type: ignore[union-attr]
        time.sleep(0.2)
    raise AssertionError("esante lab wrote no state file")


@pytest.mark.slow
def test_a_token_from_esante_token_opens_the_imap_mailbox(tmp_path: Path) -> None:
    state = tmp_path / "lab.json"
    env = {**os.environ, "ESANTE_PKI_DIR": str(tmp_path / "pki")}
    lab = subprocess.Popen([*ESANTE, "lab", "psc", "mssante", "--state", str(state), "--workdir", str(tmp_path)],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        running = _wait_for(state, lab)
        assert set(running.simulators) == {"psc", "mssante"}
        assert set(running.simulators["mssante"].ports) == {"smtp", "imap"}
        assert Path(running.ca_file or "").is_file() and running.admin_token
        assert oct(state.stat().st_mode & 0o777) == "0o600", "the state file holds the admin token"
        printed = subprocess.run([*ESANTE, "token", "--professional", "PS001", "--state", str(state)],
                                 env=env, capture_output=True, text=True, timeout=60, check=True)
        token = printed.stdout.strip()
        assert token.count(".") == 2, printed.stdout  # a JWT, alone on its line

        imap = imaplib.IMAP4("127.0.0.1", running.simulators["mssante"].ports["imap"])
        imap.starttls(ssl_context=client_ssl_context(Path(running.ca_file or "").read_bytes()))
        assert imap.authenticate("XOAUTH2", lambda _: xoauth2(CLAIRE, token).encode())[0] == "OK"
        status, _ = imap.select("INBOX")
        assert status == "OK"
        imap.logout()
    finally:
        lab.send_signal(signal.SIGINT)
        output = lab.communicate(timeout=30)[0].decode()
    assert lab.returncode == 0, output
    assert "lab stopped" in output and not state.exists(), "the state file goes with the lab"


def test_esante_token_names_a_missing_lab(tmp_path: Path) -> None:
    result = subprocess.run([*ESANTE, "token", "--professional", "PS001", "--state", str(tmp_path / "none.json")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 4 and "no lab state" in result.stdout


def test_the_lab_wires_its_simulators_and_describes_itself(tmp_path: Path) -> None:
    with Lab(["psc", "mssante"], workdir=tmp_path) as lab:
        state = lab.state()
        assert state.url("psc") == lab.url("psc") and state.ca_file == str(lab.ca_file)
        assert lab.simulator("mssante").peer("psc") is not None, "MSSanté introspects tokens at the lab's PSC"
        tokens = lab.psc_token("PS001")
        assert tokens.token_type.lower() == "bearer" and tokens.refresh_token
        assert base64.urlsafe_b64decode(tokens.access_token.split(".")[1] + "==")
        with pytest.raises(KeyError, match="runs no dmp"):
            state.url("dmp")
