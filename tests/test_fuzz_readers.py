"""Fuzzing the harness's own readers: the evidence bundles given to ``esante verify``, campaign files (as text:
tests/test_campaign.py fuzzes their values), and the dossiers Mon espace santé's referencing window reads. The
property: any input is answered with the reader's own refusal (a verification naming what is wrong, a
CampaignError naming its line, an inadmissible dossier's findings) within the bound, never an exception."""

from __future__ import annotations

import shutil
import time
import zipfile
from importlib.resources import files

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from typer.testing import CliRunner

from esante.harness.campaign import CampaignError, load_campaign, resolve_campaign
from esante.harness.cli import app
from esante.simulators.mes.catalogue import check_dossier
from tests.fuzz import AWKWARD, BOUND_SECONDS, TEXT
from tests.test_reports import Produced, _rewrite, produced  # noqa: F401 - the fixture


def _bounded(started: float) -> None:
    assert time.monotonic() - started < BOUND_SECONDS


# -- evidence bundles, as esante verify reads them -----------------------------------------------------------

def _flipped(data: bytes, at: int, junk: bytes) -> bytes:
    at %= max(len(data), 1)
    return data[:at] + junk + data[at + len(junk):]


MEMBER_JUNK = st.binary(max_size=300) | st.sampled_from([b"", b"{}", b"[]", b"null", b'{"files": 1}',
                                                         b'{"files": {"../../x": "00"}}', b"\xff\xfe",
                                                         b'{"seq": "1"}\n' * 3])


@pytest.mark.filterwarnings("ignore:Duplicate name")  # a second manifest.json is one of the hostile bundles
@given(data=st.data(), how=st.sampled_from(["flip", "truncate", "member", "add", "drop"]))
@example(data=None, how="bomb")
def test_esante_verify_answers_any_bundle_with_its_verdict(produced: Produced,  # noqa: F811
                                                           tmp_path_factory: pytest.TempPathFactory,
                                                           data: st.DataObject | None, how: str) -> None:
    """Whatever the bundle's bytes, ``esante verify`` says intact (exit 0) or names the problem (exit 1)."""
    original = produced.paths.bundle
    target = tmp_path_factory.mktemp("bundle") / "evidence-bundle.zip"
    with zipfile.ZipFile(original) as archive:
        names = archive.namelist()
    if how == "flip":
        raw = original.read_bytes()
        target.write_bytes(_flipped(raw, data.draw(st.integers(0, len(raw))), data.draw(st.binary(min_size=1,
                                                                                                   max_size=16))))
    elif how == "truncate":
        raw = original.read_bytes()
        target.write_bytes(raw[:data.draw(st.integers(0, len(raw) - 1))])
    elif how == "member":
        _rewrite(original, target, {data.draw(st.sampled_from(names)): data.draw(MEMBER_JUNK)})
    elif how == "drop":
        _rewrite(original, target, {data.draw(st.sampled_from(names)): None})
    elif how == "add":
        _rewrite(original, target, add={data.draw(st.sampled_from(["../escape", "/abs", "evidence/blobs/x",
                                                                   "manifest.json", "a" * 300])):
                                        data.draw(MEMBER_JUNK)})
    else:  # 50 MB of zeros in a few kB: refused from the archive's directory, never inflated
        shutil.copy(original, target)
        with zipfile.ZipFile(target, "a", compression=zipfile.ZIP_DEFLATED) as archive:
            archive.writestr("evidence/blobs/bomb", b"\0" * (50 * 1024 * 1024))
    started = time.monotonic()
    result = CliRunner().invoke(app, ["verify", str(target)])
    _bounded(started)
    assert result.exit_code in (0, 1), (result.output, result.exception)
    assert "Traceback" not in result.output
    if how in ("member", "drop", "bomb"):
        assert result.exit_code == 1, result.output


# -- campaign files, as text ---------------------------------------------------------------------------------

SHIPPED_CAMPAIGN = resolve_campaign("insi").read_text(encoding="utf-8")
LINES = SHIPPED_CAMPAIGN.splitlines(keepends=True)


@given(at=st.integers(0, len(LINES) - 1), how=st.sampled_from(["delete", "duplicate", "replace", "indent", "junk"]),
       junk=TEXT | st.sampled_from(["- *a", "&a [*a]", "{", "  - ", "\t", "!!python/object:os.system x", "---",
                                    "? [x]", "cases: null", "%YAML 9.9", "<<: *b"]))
def test_any_campaign_text_loads_or_is_refused_by_line(tmp_path_factory: pytest.TempPathFactory, at: int, how: str,
                                                       junk: str) -> None:
    lines = list(LINES)
    if how == "delete":
        del lines[at]
    elif how == "duplicate":
        lines.insert(at, lines[at])
    elif how == "replace":
        lines[at] = junk + "\n"
    elif how == "indent":
        lines[at] = " " + lines[at]
    else:
        lines[at] = lines[at].rstrip("\n") + junk + "\n"
    path = tmp_path_factory.mktemp("campaign") / "campaign.yaml"
    path.write_text("".join(lines), encoding="utf-8", errors="surrogatepass")
    started = time.monotonic()
    try:
        load_campaign(path)
    except CampaignError as exc:
        assert str(exc).startswith(str(path) + ":")
    _bounded(started)


# -- dossiers, as Mon espace santé's referencing window reads them -------------------------------------------

DOSSIER = files("esante.harness.reference.mes").joinpath("dossier.yaml").read_text(encoding="utf-8")
DOSSIER_LINES = DOSSIER.splitlines(keepends=True)


@given(at=st.integers(0, len(DOSSIER_LINES) - 1), how=st.sampled_from(["delete", "replace", "append", "value"]),
       junk=TEXT | AWKWARD | st.sampled_from(["&a [*a, *a]", "*zz", "{", "- - - -", "evidence: 12",
                                              "answers: {}", "!!binary AAAA", "\t-"]))
@example(at=0, how="replace", junk="[" * 5000)
def test_any_dossier_is_answered_with_its_findings(at: int, how: str, junk: str) -> None:
    lines = list(DOSSIER_LINES)
    if how == "delete":
        del lines[at]
    elif how == "replace":
        lines[at] = junk + "\n"
    elif how == "append":
        lines.insert(at, junk + "\n")
    else:
        key, sep, _ = lines[at].partition(":")
        lines[at] = f"{key}{sep} {junk}\n" if sep else junk + "\n"
    started = time.monotonic()
    result = check_dossier("".join(lines))
    _bounded(started)
    assert all(finding.kind and finding.message for finding in result.findings)
    if "[" * 5000 in junk:
        assert not result.admissible


#: Found by fuzzing: a value that is an alias inside its own anchor raised from the constructor (MES's referencing
#: window answered 500); then bytes that are no text.
MALFORMED_DOSSIERS = ["dossier: {service: &b [*b]}", "dossier:\n  answers: &a\n    - *a\n", b"\xff\xfe\x00",
                      b"\x00" * 1000, b"dossier: \xc3\x28"]


@pytest.mark.parametrize("text", MALFORMED_DOSSIERS)
def test_malformed_dossiers_are_refused_as_malformed(text: str | bytes) -> None:
    assert "malformed" in [finding.kind for finding in check_dossier(text).findings]
