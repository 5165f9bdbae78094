"""One run, end to end: resolve the campaign, start the simulators, reach the candidate, play, report.

This is what ``esante run`` does, as a function the tests (and editors' own tooling) can call.

A run refuses, before anything starts, a case id its campaign does not have, a selection that leaves nothing to
play, and an output folder that already holds a run (unless ``force``); a run that cannot start leaves no folder
behind. Its evidence store is closed at the end, whatever happened: ``evidence.sqlite`` is then one
self-contained file.

A driver-mode run stopped by SIGINT (Ctrl-C) or SIGTERM stops the case under way, marks it and the cases after it,
and still writes its reports and its signed bundle, which say the run was interrupted
(``RunResult.interrupted``); a second signal stops at once (``esante report`` then rebuilds the reports from the
evidence store, as after SIGKILL).

An operator session (a person at the prompts) saves its progress after each judged case
(``operator-session.json`` in the run's folder); when it is interrupted (Ctrl-C, the terminal closed), the same
command with ``resume`` plays the cases not yet judged, in the same run: same run id, same evidence store,
one report.
"""

from __future__ import annotations

import shutil
import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from esante.harness.actions import load_actions
from esante.harness.campaign import LoadedCampaign, Mode, load_campaign, resolve_campaign
from esante.harness.checks import load_checks
from esante.harness.driver import API_PREFIX, DriverClient
from esante.harness.environment import LocalEnvironment
from esante.harness.kits import defects
from esante.harness.operator import Operator
from esante.harness.remote import RemoteConfig, RemoteEnvironment
from esante.harness.runner import CampaignRunner, CaseProgress, Interrupted, Progress, Resumed, new_run_id
from esante.reports import BUNDLE_NAME, PDF_NAME, ReportPaths, write_reports
from esante.reports.model import CaseResult, RunResult
from esante.reports.rebuild import rebuild
from esante.simulators.core.app import simulator_names
from esante.simulators.core.evidence import EvidenceStore, utc_now
from esante.simulators.core.pki import CA_CERT_FILE, default_pki_dir
from esante.simulators.core.server import ServerHandle
from esante.simulators.dataset import load_dataset

REFERENCE = "reference"
LOCAL, CONTAINERS = "local", "containers"
SESSION_FILE = "operator-session.json"
EVIDENCE_FILE = "evidence.sqlite"
#: What a run writes into its folder: a folder holding any of these holds a run.
RUN_FILES = (EVIDENCE_FILE, f"{EVIDENCE_FILE}-wal", f"{EVIDENCE_FILE}-shm", f"{EVIDENCE_FILE}-journal",
             "report.json", "junit.xml", "report.html", BUNDLE_NAME, PDF_NAME, SESSION_FILE)


@dataclass(slots=True)
class RunRequest:
    campaign: str
    candidate: str = REFERENCE
    out_dir: Path | None = None
    defects: Sequence[str] = ()
    mode: Mode = Mode.DRIVER
    case_ids: set[str] | None = None
    tls: bool = True
    pki_dir: Path | None = None
    operator: Operator | None = None
    signing_key: Path | None = None
    #: where the simulators run: "local" (served by this process), "containers" (started for the run from
    #: the project's image), or the path of a YAML file giving the URL of each simulator already running
    simulators: str = LOCAL
    image: str | None = None  # for "containers": the image (default $ESANTE_IMAGE, else esante-conformance:latest)
    #: take up the interrupted operator session saved in ``out_dir`` (its cases already judged are kept)
    resume: bool = False
    #: replace the run ``out_dir`` already holds (without it, such a folder is refused)
    force: bool = False


@dataclass(slots=True)
class RunOutput:
    result: RunResult
    out_dir: Path
    evidence_path: Path
    reports: ReportPaths


class RunInterrupted(Exception):
    """An operator session stopped before its end (Ctrl-C, end of input); ``out_dir`` holds what to resume."""

    def __init__(self, out_dir: Path, judged: int) -> None:
        super().__init__(f"interrupted with {judged} case(s) judged; the session is saved in {out_dir}")
        self.out_dir, self.judged = out_dir, judged


class SavedSession(BaseModel):
    """An operator session's progress, written after each judged case."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    started_at: str
    campaign_sha256: str
    case_ids: list[str] | None = None
    results: list[CaseResult] = []

    @classmethod
    def read(cls, out_dir: Path, loaded: LoadedCampaign) -> SavedSession:
        path = out_dir / SESSION_FILE
        if not path.is_file():
            raise ValueError(f"no interrupted operator session to resume in {out_dir} (no {SESSION_FILE})")
        saved = cls.model_validate_json(path.read_text(encoding="utf-8"))
        if saved.campaign_sha256 != loaded.sha256:
            raise ValueError(f"the campaign {loaded.path} changed since the session in {out_dir} began: "
                             "start a new session")
        return saved

    def write(self, out_dir: Path) -> None:
        temporary = out_dir / f"{SESSION_FILE}.tmp"
        temporary.write_text(self.model_dump_json(indent=1), encoding="utf-8")
        temporary.replace(out_dir / SESSION_FILE)


@contextmanager
def _candidate(request: RunRequest, pki_dir: Path) -> Iterator[DriverClient | None]:
    if request.mode is Mode.OPERATOR:
        yield None
        return
    if request.candidate != REFERENCE:
        with DriverClient(request.candidate) as client:
            yield client
        return
    from esante.harness.reference import create_reference_app

    with ServerHandle(create_reference_app(pki_dir=pki_dir, defects=request.defects)) as server, \
            DriverClient(server.url + API_PREFIX) as client:
        yield client


def environment(request: RunRequest, names: list[str], store: EvidenceStore, pki_dir: Path,
                dataset: str) -> LocalEnvironment | RemoteEnvironment:
    """The simulators of the run, where ``request.simulators`` says; the campaign is the same for all three."""
    if request.simulators == LOCAL:
        return LocalEnvironment(names, store=store, pki_dir=pki_dir, tls=request.tls, dataset=dataset)
    if request.simulators == CONTAINERS:
        from esante.harness.containers import ContainerEnvironment

        return ContainerEnvironment(names, store=store, pki_dir=pki_dir, tls=request.tls, dataset=dataset,
                                    image=request.image)
    return RemoteEnvironment.from_config(names, _remote_config(request), store=store,
                                        default_ca=pki_dir / CA_CERT_FILE)


def _remote_config(request: RunRequest) -> RemoteConfig:
    return RemoteConfig.load(Path(request.simulators))


def _ca_file(request: RunRequest, pki_dir: Path, env: LocalEnvironment | RemoteEnvironment) -> Path | None:
    """The CA file the candidate must trust to reach the simulators over HTTPS (None: plain HTTP)."""
    if env.ca_pem is None:
        return None
    if request.simulators in (LOCAL, CONTAINERS):
        return pki_dir / CA_CERT_FILE
    return _remote_config(request).ca or pki_dir / CA_CERT_FILE


def load(campaign: str) -> LoadedCampaign:
    """A campaign (a file, or a shipped campaign's name), checked for everything a run would trip on."""
    return load_campaign(resolve_campaign(campaign), known_checks=load_checks(), actions=load_actions(),
                         simulators=simulator_names(), datasets=load_dataset)


def check_defects(request: RunRequest, loaded: LoadedCampaign) -> None:
    """Refuse defects this run could not show: an unknown one, one for a candidate that is not the reference,
    one whose rule no case of the campaign checks (it belongs to another campaign: the run would be green)."""
    if not request.defects:
        return
    if request.mode is Mode.OPERATOR or request.candidate != REFERENCE:
        raise ValueError("--defect switches on a defect of the reference candidate: it needs --candidate reference")
    catalogue = defects()
    unknown = sorted(set(request.defects) - set(catalogue))
    if unknown:
        raise ValueError(f"unknown defect(s) {', '.join(unknown)} (esante list defects names them all)")
    judged = {expectation.check for case in loaded.campaign.cases for expectation in case.expect}
    header = loaded.campaign.campaign
    foreign = [catalogue[name] for name in request.defects if catalogue[name].rule not in judged]
    if foreign:
        raise ValueError("; ".join(
            f"defect {d.name} belongs to the {d.campaign} campaign: its rule {d.rule} is judged by no case of "
            f"{header.id} (esante run {d.campaign} --defect {d.name})" for d in foreign))


def check_selection(request: RunRequest, loaded: LoadedCampaign) -> None:
    """Refuse case ids the campaign does not have, and a selection of which this run would play nothing: a typo
    in ``--case`` must not make a green build."""
    cases = loaded.campaign.cases
    known = [case.id for case in cases]
    unknown = sorted(set(request.case_ids or ()) - set(known))
    if unknown:
        raise ValueError(f"unknown case id(s) {', '.join(unknown)} in {loaded.campaign.campaign.id}; known: "
                         f"{', '.join(known)}")
    playable = [c for c in cases if request.mode in c.preconditions.modes
                and (request.case_ids is None or c.id in request.case_ids)]
    if not playable:
        raise ValueError(f"nothing to play: no selected case of {loaded.campaign.campaign.id} is played in "
                         f"{request.mode.value} mode")


def _run_folder(request: RunRequest, run_id: str) -> tuple[Path, bool]:
    """The run's folder, and whether this run creates it; a folder holding another run is refused, or emptied of
    that run's files with ``force``."""
    out_dir = request.out_dir or Path("runs") / run_id
    held = [name for name in RUN_FILES if (out_dir / name).exists()]
    if held and not request.resume:
        if not request.force:
            raise ValueError(f"{out_dir} already holds a run ({', '.join(held)}): choose another --out, or "
                             "--force to replace it")
        for name in held:
            (out_dir / name).unlink()
    created = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir, created


def play(request: RunRequest, progress: Progress | None = None) -> RunOutput:
    """Play a campaign; everything goes under ``out_dir`` (default ``runs/<run id>/``)."""
    loaded = load(request.campaign)
    check_defects(request, loaded)
    check_selection(request, loaded)
    if request.resume and request.out_dir is None:
        raise ValueError("resuming needs the folder of the interrupted session")
    saved = SavedSession.read(request.out_dir, loaded) if request.resume and request.out_dir else None
    run_id = saved.run_id if saved else new_run_id()
    out_dir, created = _run_folder(request, run_id)
    store = EvidenceStore(out_dir / EVIDENCE_FILE)
    try:
        output = _play(request, loaded, saved, run_id, out_dir, store, progress)
    except BaseException:
        _discard_if_not_started(store, run_id, out_dir, created)
        raise
    finally:
        store.close()
    return output


def _discard_if_not_started(store: EvidenceStore, run_id: str, out_dir: Path, created: bool) -> None:
    """A run that failed before it began (a driver that does not answer, simulators that do not start) leaves no
    folder of its own behind."""
    if created and not any(store.records(kind=kind, run_id=run_id) for kind in ("run.start", "run.resume")):
        store.close()
        shutil.rmtree(out_dir, ignore_errors=True)


def _play(request: RunRequest, loaded: LoadedCampaign, saved: SavedSession | None, run_id: str, out_dir: Path,
          store: EvidenceStore, progress: Progress | None) -> RunOutput:
    pki_dir = request.pki_dir or default_pki_dir()
    header = loaded.campaign.campaign
    operator = request.operator or (Operator() if request.mode is Mode.OPERATOR else None)
    session = saved or (SavedSession(run_id=run_id, started_at=utc_now(), campaign_sha256=loaded.sha256,
                                     case_ids=sorted(request.case_ids) if request.case_ids else None)
                        if operator else None)
    if session is not None:
        session.write(out_dir)  # resumable from the start, even before a case is judged
    case_ids = set(saved.case_ids) if saved and saved.case_ids else request.case_ids
    resumed = Resumed(saved.started_at, {r.id: r for r in saved.results}) if saved else None
    with environment(request, header.simulators, store, pki_dir, header.dataset) as env, \
            _candidate(request, pki_dir) as driver:
        if operator is not None:
            operator.introduce(env.endpoints, _ca_file(request, pki_dir, env))
        runner = CampaignRunner(loaded, env, mode=request.mode, driver=driver, operator=operator, run_id=run_id,
                                case_ids=case_ids, progress=_saving(progress, session, out_dir), resumed=resumed)
        try:
            with _stopping_on_signals(operator is None):
                result = runner.run()
        except Interrupted as stop:  # between the last case and the run's end: its verdicts are all recorded
            if not store.records(kind="run.start", run_id=run_id):
                raise
            result = rebuild(store, run_id, interrupted=stop.signal_name)
        except (KeyboardInterrupt, EOFError):
            if session is None:
                raise
            raise RunInterrupted(out_dir, len(session.results)) from None
    paths = write_reports(result, store, out_dir, signing_key=request.signing_key)
    (out_dir / SESSION_FILE).unlink(missing_ok=True)
    return RunOutput(result, out_dir, store.path, paths)


@contextmanager
def _stopping_on_signals(enabled: bool) -> Iterator[None]:
    """While a driver-mode run plays, SIGINT and SIGTERM raise :class:`Interrupted` in it (the runner ends the run
    with its verdicts); the first signal puts the previous handlers back, so a second one stops at once."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return
    stopping = (signal.SIGINT, signal.SIGTERM)
    previous = {number: signal.getsignal(number) for number in stopping}

    def restore() -> None:
        for number, handler in previous.items():
            with suppress(TypeError, ValueError):
                signal.signal(number, handler)

    def stop(number: int, _frame: object) -> None:
        restore()
        raise Interrupted(signal.Signals(number).name)

    for number in stopping:
        signal.signal(number, stop)
    try:
        yield
    finally:
        restore()


def _saving(progress: Progress | None, session: SavedSession | None, out_dir: Path) -> Progress:
    """``progress``, and the session saved after each judged case (operator mode)."""

    def saving(event: CaseProgress) -> None:
        if session is not None and event.result is not None:
            session.results.append(event.result)
            session.write(out_dir)
        if progress is not None:
            progress(event)

    return saving
