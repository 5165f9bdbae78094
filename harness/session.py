"""One run, end to end: resolve the campaign, start the simulators, reach the candidate, play, report.

This is what ``esante run`` does, as a function the tests (and editors' own tooling) can call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from esante.harness.campaign import LoadedCampaign, Mode, load_campaign, resolve_campaign
from esante.harness.checks import load_checks
from esante.harness.driver import API_PREFIX, DriverClient
from esante.harness.environment import LocalEnvironment
from esante.harness.operator import Operator
from esante.harness.remote import RemoteConfig, RemoteEnvironment
from esante.harness.runner import CampaignRunner, new_run_id
from esante.reports import ReportPaths, write_reports
from esante.reports.model import CaseResult, RunResult
from esante.simulators.core.evidence import EvidenceStore
from esante.simulators.core.pki import CA_CERT_FILE, default_pki_dir
from esante.simulators.core.server import ServerHandle

REFERENCE = "reference"
LOCAL, CONTAINERS = "local", "containers"


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


@dataclass(slots=True)
class RunOutput:
    result: RunResult
    out_dir: Path
    evidence_path: Path
    reports: ReportPaths


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
    config = RemoteConfig.load(Path(request.simulators))
    return RemoteEnvironment.from_config(names, config, store=store, default_ca=pki_dir / CA_CERT_FILE)


def load(request: RunRequest) -> LoadedCampaign:
    return load_campaign(resolve_campaign(request.campaign), known_checks=load_checks())


def play(request: RunRequest, progress: Callable[[str, CaseResult | None], None] | None = None) -> RunOutput:
    """Play a campaign; everything goes under ``out_dir`` (default ``runs/<run id>/``)."""
    loaded = load(request)
    run_id = new_run_id()
    out_dir = request.out_dir or Path("runs") / run_id
    out_dir.mkdir(parents=True, exist_ok=True)
    pki_dir = request.pki_dir or default_pki_dir()
    store = EvidenceStore(out_dir / "evidence.sqlite")
    header = loaded.campaign.campaign
    with environment(request, header.simulators, store, pki_dir, header.dataset) as env, \
            _candidate(request, pki_dir) as driver:
        runner = CampaignRunner(loaded, env, mode=request.mode, driver=driver, operator=request.operator,
                                run_id=run_id, case_ids=request.case_ids, progress=progress)
        result = runner.run()
    paths = write_reports(result, store, out_dir, signing_key=request.signing_key)
    return RunOutput(result, out_dir, store.path, paths)
