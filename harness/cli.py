"""``esante``: the command line of esante-conformance.

Exit codes of ``esante run`` (for CI): 0 every case passed (or was skipped), 1 at least one case failed,
3 no failure but an error or an inconclusive case, 4 the run could not start (bad campaign, unreachable
candidate). ``esante verify``: 0 intact, 1 altered.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from esante.harness.actions import contract_app
from esante.harness.campaign import CampaignError, Mode, campaign_schema, load_campaign, resolve_campaign
from esante.harness.checks import load_checks
from esante.harness.driver import DriverError
from esante.reports.model import CaseResult, RunResult, Verdict

if TYPE_CHECKING:
    from esante.harness.lab import LabState

app = typer.Typer(help="Conformance simulators and certification campaigns for French digital-health services.",
                  no_args_is_help=True, add_completion=False)
console = Console()
COLOURS = {"passed": "green", "failed": "red", "error": "magenta", "skipped": "dim", "inconclusive": "yellow"}
EXIT_FAILED, EXIT_UNSURE, EXIT_CANNOT_RUN = 1, 3, 4


def _progress(label: str, result: CaseResult | None) -> None:
    if result is None:  # a case starts: its line is printed once judged
        return
    colour = COLOURS[result.verdict.value]
    console.print(f"  [{colour}]{result.verdict.value:<12}[/{colour}] {label}"
                  + (f"\n{'':15}[dim]{result.reason[:300]}[/dim]" if result.verdict != Verdict.PASSED else ""))


def exit_code(result: RunResult) -> int:
    verdicts = {c.verdict for c in result.cases}
    if Verdict.FAILED in verdicts:
        return EXIT_FAILED
    if verdicts & {Verdict.ERROR, Verdict.INCONCLUSIVE}:
        return EXIT_UNSURE
    return 0


@app.command()
def run(campaign: str = typer.Argument(..., help="campaign file, or a shipped campaign name (insi)"),
        candidate: str = typer.Option("reference", help="driver base URL of the candidate, or 'reference'"),
        out: Path | None = typer.Option(None, help="output folder (default runs/<run id>/)"),
        defect: list[str] = typer.Option([], help="reference candidate only: switch on a named defect"),
        operator: bool = typer.Option(False, help="a person plays the candidate at the prompts"),
        case: list[str] = typer.Option([], help="play only these case ids"),
        plain_http: bool = typer.Option(False, help="serve the simulators over plain HTTP instead of HTTPS"),
        signing_key: Path | None = typer.Option(None, help="Ed25519 key signing the bundle"),
        simulators: str = typer.Option("local", help="where the simulators run: local (this process), containers "
                                                     "(started from the image for the run), or a YAML file with "
                                                     "the URL of each simulator already running"),
        image: str | None = typer.Option(None, envvar="ESANTE_IMAGE", help="--simulators containers: the image "
                                                                           "[default: esante-conformance:latest]")
        ) -> None:
    """Play a campaign against a candidate and write the reports and the evidence bundle."""
    from esante.harness.session import RunRequest, play

    request = RunRequest(campaign=campaign, candidate=candidate, out_dir=out, defects=defect,
                         mode=Mode.OPERATOR if operator else Mode.DRIVER, case_ids=set(case) or None,
                         tls=not plain_http, signing_key=signing_key, simulators=simulators, image=image)
    try:
        output = play(request, progress=_progress)
    except (CampaignError, FileNotFoundError, DriverError, ValueError) as exc:
        console.print(f"[red]cannot run:[/red] {exc}")
        raise typer.Exit(EXIT_CANNOT_RUN) from None
    result = output.result
    counts = ", ".join(f"{n} {v}" for v, n in result.counts().items() if n)
    console.print(f"\n[bold]{result.campaign.id} {result.campaign.version}[/bold] against "
                  f"{result.candidate.name} {result.candidate.version}: {counts}")
    from esante.reports.terminal import requirement_table, what_next

    console.print(requirement_table(result))
    console.print(f"run id      {result.run_id}", soft_wrap=True)
    console.print(f"HTML report {output.reports.html}", soft_wrap=True)
    console.print(f"PDF report  {output.reports.pdf}", soft_wrap=True)
    console.print(f"JSON report {output.reports.json}", soft_wrap=True)
    console.print(f"JUnit XML   {output.reports.junit}", soft_wrap=True)
    console.print(f"evidence    {output.reports.bundle}", soft_wrap=True)
    rerun = ["esante", "run", campaign, "--candidate", candidate, *(a for d in defect for a in ("--defect", d)),
             *(["--operator"] if operator else []), *(["--plain-http"] if plain_http else []),
             *(["--simulators", simulators] if simulators != "local" else [])]
    steps = what_next(result, output.reports.html, output.reports.pdf, output.reports.bundle, rerun)
    console.print("next: " + "\n      ".join(steps), soft_wrap=True, markup=False, highlight=False)
    raise typer.Exit(exit_code(result))


@app.command()
def report(run_dir: Path = typer.Argument(..., help="a finished run's folder (report.json, evidence.sqlite, "
                                                    "evidence-bundle.zip)"),
           pdf: bool = typer.Option(False, "--pdf", help="write report.pdf"),
           html: bool = typer.Option(False, "--html", help="write report.html"),
           json_: bool = typer.Option(False, "--json", help="write report.json (in the current schema)"),
           out: Path | None = typer.Option(None, help="write there instead of into RUN_DIR")) -> None:
    """Render a finished run's reports again from its report.json (the PDF when no format is named); the
    evidence bundle is left as it was signed."""
    from esante.reports.rerender import RunFolderError, rerender

    formats = tuple(name for name, wanted in (("pdf", pdf), ("html", html), ("json", json_)) if wanted) or ("pdf",)
    try:
        written = rerender(run_dir, formats, out)
    except RunFolderError as exc:
        console.print(f"[red]cannot render:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(EXIT_CANNOT_RUN) from None
    for name, path in written.items():
        console.print(f"{name.upper():<4} report {path}", soft_wrap=True, highlight=False)


@app.command()
def verify(bundle: Path, trusted_key: Path | None = typer.Option(None, help="PEM public key the bundle must be "
                                                                             "signed with")) -> None:
    """Check that an evidence bundle is intact; name what was altered."""
    from esante.reports import verify_bundle

    outcome = verify_bundle(bundle, trusted_key.read_bytes() if trusted_key else None)
    if outcome.ok:
        console.print(f"[green]intact[/green]: run {outcome.run_id}, {outcome.files_checked} files, "
                      f"signed by {outcome.signer_fingerprint}")
        for problem in outcome.problems:
            console.print(f"  note: {problem}")
        return
    console.print(f"[red]ALTERED[/red]: {bundle}")
    for problem in outcome.problems:
        console.print(f"  - {problem}")
    raise typer.Exit(1)


@app.command()
def sim(name: str = typer.Argument(..., envvar="ESANTE_SIMULATOR", help="simulator name (insi)"),
        host: str = typer.Option("127.0.0.1", envvar="ESANTE_HOST"),
        port: int = typer.Option(8001, envvar="ESANTE_PORT"),
        tls: bool = typer.Option(False, envvar="ESANTE_TLS", help="serve HTTPS with a certificate from the test PKI"),
        mtls: bool = typer.Option(False, envvar="ESANTE_MTLS", help="require a client certificate (implies --tls)"),
        hostname: list[str] = typer.Option(["localhost", "127.0.0.1"], envvar="ESANTE_TLS_HOSTNAMES",
                                           help="names the HTTPS certificate is valid for (a compose service "
                                                "name too, when other containers call it)"),
        evidence: Path = typer.Option(Path("evidence.sqlite"), envvar="ESANTE_EVIDENCE"),
        dataset: str = typer.Option("default", envvar="ESANTE_DATASET"),
        pki_dir: Path | None = typer.Option(None, envvar="ESANTE_PKI_DIR"),
        option: list[str] = typer.Option([], envvar="ESANTE_SIM_OPTIONS",
                                          help="a simulator option KEY=VALUE, e.g. auto_login=PS001 or "
                                               "ciba=manual for psc")) -> None:
    """Serve one simulator in the foreground (admin token from ESANTE_ADMIN_TOKEN, else printed).

    Every option can come from the environment (``ESANTE_SIMULATOR``, ``ESANTE_PORT``...): that is how the
    container image and the compose file choose the simulator, and how its health check finds it.
    """
    from esante.simulators.core.app import build_simulator, create_app
    from esante.simulators.core.pki import default_pki_dir
    from esante.simulators.core.runtime import SimulatorSettings, TlsSettings
    from esante.simulators.core.server import serve

    pki = pki_dir or default_pki_dir()
    settings = SimulatorSettings.from_env(evidence_path=evidence, dataset=dataset, pki_dir=pki)
    settings.options.update(_options(option))
    try:
        simulator = build_simulator(name, settings)
    except (KeyError, TypeError, ValueError) as exc:  # unknown simulator, or an option it does not take
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(4) from None
    tls_settings = TlsSettings(pki_dir=pki, require_client_cert=mtls,
                               hostnames=tuple(hostname)) if tls or mtls else None
    console.print(f"{simulator.title} simulator on {'https' if tls_settings else 'http'}://{host}:{port} "
                  f"(evidence {evidence}); admin token: {settings.admin_token}")
    serve(create_app(simulator, settings), host=host, port=port, tls=tls_settings)


def _options(pairs: list[str]) -> dict[str, object]:
    """``KEY=VALUE`` pairs as simulator options; true/false become booleans."""
    options: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"option {pair!r} is not KEY=VALUE")
        options[key] = {"true": True, "false": False}.get(value.lower(), value)
    return options


@app.command()
def reference(host: str = typer.Option("127.0.0.1", envvar="ESANTE_HOST"),
              port: int = typer.Option(8700, envvar="ESANTE_REFERENCE_PORT"),
              defect: list[str] = typer.Option([], help="switch on a named defect"),
              pki_dir: Path | None = typer.Option(None, envvar="ESANTE_PKI_DIR")) -> None:
    """Serve the reference candidate's driver API in the foreground (under /esante/v1)."""
    from esante.harness.reference import create_reference_app
    from esante.simulators.core.pki import default_pki_dir
    from esante.simulators.core.server import serve

    console.print(f"reference candidate on http://{host}:{port}/esante/v1 (defects: {', '.join(defect) or 'none'})")
    serve(create_reference_app(pki_dir=pki_dir or default_pki_dir(), defects=defect), host=host, port=port)


@app.command()
def lab(names: list[str] = typer.Argument(None, help="simulators to start (default: all of them)"),
        state: Path | None = typer.Option(None, help="write how to reach the lab (URLs, ports, CA, admin token) "
                                                     "to this JSON file while it runs"),
        workdir: Path = typer.Option(Path.home() / ".esante" / "lab", help="where the evidence store goes"),
        pki_dir: Path | None = typer.Option(None, envvar="ESANTE_PKI_DIR", help="the test PKI "
                                                                             "[default: ~/.esante/pki]"),
        host: str = typer.Option("127.0.0.1", help="the address to serve on"),
        port: list[str] = typer.Option([], help="a fixed HTTP port, SIM=PORT (e.g. psc=8002)"),
        option: list[str] = typer.Option([], help="a simulator option, SIM.KEY=VALUE (e.g. mssante.smtp_port=8587)"),
        plain_http: bool = typer.Option(False, help="serve plain HTTP instead of HTTPS"),
        dataset: str = typer.Option("default", envvar="ESANTE_DATASET")) -> None:
    """Start several simulators wired to each other, in the foreground, until Ctrl-C."""
    from esante.harness.lab import Lab
    from esante.simulators.core.app import simulator_names
    from esante.simulators.core.pki import default_pki_dir

    chosen = names or simulator_names()
    unknown = sorted(set(chosen) - set(simulator_names()))
    if unknown:
        console.print(f"[red]unknown simulator(s) {', '.join(unknown)}; known: {', '.join(simulator_names())}[/red]")
        raise typer.Exit(EXIT_CANNOT_RUN)
    ports = {name: int(number) for name, number in _pairs(port, "=").items()}
    with Lab(chosen, workdir=workdir, pki_dir=pki_dir or default_pki_dir(), tls=not plain_http, dataset=dataset,
             host=host, ports=ports, options=_lab_options(option)) as running:
        described = running.state()
        if state is not None:
            described.write(state)
        _show_lab(described, state)
        _wait_for_interrupt()
    if state is not None:
        state.unlink(missing_ok=True)
    console.print("lab stopped")


@app.command()
def token(professional: str = typer.Option(..., help="the professional: data-set id (PS001) or national id"),
          state: Path = typer.Option(Path("lab.json"), help="the running lab's state file (esante lab --state)"),
          client: str = typer.Option("esante-reference-mss", help="the registered PSC client to sign in with"),
          full: bool = typer.Option(False, "--json", help="print the token endpoint's whole answer as JSON")) -> None:
    """Print a fresh Pro Santé Connect access token from a running lab (to try a mail client by hand)."""
    from esante.harness.lab import read_state
    from esante.harness.lab.psc import TokenRefused, psc_token

    try:
        running = read_state(state)
        tokens = psc_token(running.url("psc"), running.ca_pem(), professional, client_id=client,
                           dataset=running.dataset)
    except (FileNotFoundError, ValueError, KeyError, TokenRefused) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(EXIT_CANNOT_RUN) from None
    print(tokens.model_dump_json(indent=2, exclude_none=True) if full else tokens.access_token)


def _pairs(values: list[str], separator: str) -> dict[str, str]:
    pairs = {}
    for value in values:
        key, sep, rest = value.partition(separator)
        if not sep or not key or not rest:
            raise typer.BadParameter(f"{value!r} is not KEY{separator}VALUE")
        pairs[key] = rest
    return pairs


def _lab_options(values: list[str]) -> dict[str, dict[str, object]]:
    """``SIM.KEY=VALUE`` pairs, by simulator."""
    by_simulator: dict[str, dict[str, object]] = {}
    for key, value in _pairs(values, "=").items():
        simulator, dot, name = key.partition(".")
        if not dot:
            raise typer.BadParameter(f"option {key!r} is not SIM.KEY=VALUE")
        by_simulator.setdefault(simulator, {}).update(_options([f"{name}={value}"]))
    return by_simulator


def _show_lab(described: LabState, state: Path | None) -> None:
    table = Table("simulator", "URL", "other ports")
    for name, sim in described.simulators.items():
        table.add_row(name, sim.url, ", ".join(f"{k} {v}" for k, v in sim.ports.items()))
    console.print(table)
    console.print(f"CA file      {described.ca_file or '(plain HTTP)'}", soft_wrap=True)
    console.print(f"admin token  {described.admin_token}", soft_wrap=True)
    if state is not None:
        console.print(f"state        {state}  (esante token --professional PS001 --state {state})", soft_wrap=True)
    console.print("Ctrl-C stops the lab.")


def _wait_for_interrupt() -> None:
    """Block until Ctrl-C or SIGTERM (a container or a process manager stopping the lab)."""
    import signal
    import threading

    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


@app.command("check-campaign")
def check_campaign(campaign: str) -> None:
    """Validate a campaign file (line and field of every problem)."""
    try:
        loaded = load_campaign(resolve_campaign(campaign), known_checks=load_checks())
    except (CampaignError, FileNotFoundError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    console.print(f"[green]valid[/green]: {loaded.campaign.campaign.id} {loaded.campaign.campaign.version}, "
                  f"{len(loaded.campaign.cases)} cases, sha256 {loaded.sha256}")


@app.command("list-checks")
def list_checks() -> None:
    """Every registered check with the requirements it judges."""
    table = Table("check", "requirements", "title")
    for name, registered in sorted(load_checks().items()):
        table.add_row(name, ", ".join(registered.requirements), registered.title)
    console.print(table)


@app.command()
def schema(what: str = typer.Argument(..., help="campaign | report | driver"),
           write: Path | None = typer.Option(None, help="write to this file instead of printing")) -> None:
    """Print (or write) the JSON Schema of campaign files, of the JSON report, or the driver OpenAPI."""
    if what == "campaign":
        document = campaign_schema()
    elif what == "report":
        from esante.reports.json_report import report_schema

        document = report_schema()
    elif what == "driver":
        document = contract_app().openapi()
    else:
        raise typer.BadParameter("campaign, report or driver")
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    if write:
        write.write_text(text, encoding="utf-8")
    else:
        print(text)


mes_app = typer.Typer(help="Mon espace santé: the referencing window's checks, offline.", no_args_is_help=True)
app.add_typer(mes_app, name="mes")


@mes_app.command("check-dossier")
def mes_check_dossier(file: Path = typer.Argument(..., help="referencing dossier (YAML or JSON)")) -> None:
    """Check a referencing dossier as the window's admissibility does: what is missing, what is malformed
    (file:line), and the evidence bundles it cites (beside the file: intact, case passed)."""
    from esante.simulators.mes.catalogue import MAX_DOSSIER_BYTES, check_dossier

    try:
        if file.stat().st_size > MAX_DOSSIER_BYTES:
            console.print(f"[red]{file}: larger than {MAX_DOSSIER_BYTES} bytes[/red]")
            raise typer.Exit(1)
        text = file.read_bytes()
    except OSError as exc:
        console.print(f"[red]{file}: {exc.strerror}[/red]")
        raise typer.Exit(EXIT_CANNOT_RUN) from None
    result = check_dossier(text, evidence_dir=file.parent)
    for finding in result.findings:
        console.print(finding.render(str(file)), markup=False, highlight=False, soft_wrap=True)
    if not result.admissible:
        console.print(f"[red]not admissible[/red]: {len(result.findings)} finding(s)")
        raise typer.Exit(1)
    console.print(f"[green]admissible[/green]: {len(result.answers)} criteria answered")


@app.command()
def serve(host: str = typer.Option("127.0.0.1", envvar="ESANTE_LAB_HOST"),
          port: int = typer.Option(8800, envvar="ESANTE_LAB_PORT"),
          data: Path = typer.Option(Path.home() / ".esante" / "lab-server", envvar="ESANTE_LAB_DATA",
                                    help="runs, evidence, procès-verbaux, keys (shared by every worker)"),
          database: str = typer.Option("", envvar="ESANTE_LAB_DATABASE", help="postgresql://… for a shared lab "
                                                                              "[default: SQLite in --data]"),
          workers: int = typer.Option(2, envvar="ESANTE_LAB_WORKERS", help="runs played at a time"),
          queue: str = typer.Option("local", envvar="ESANTE_LAB_QUEUE", help="local (a pool in this process) or "
                                                                             "procrastinate (workers elsewhere)"),
          worker: bool = typer.Option(False, "--worker", help="no web server: take runs from the procrastinate queue"),
          campaigns: Path | None = typer.Option(None, envvar="ESANTE_LAB_CAMPAIGNS", help="more campaign files"),
          admin_email: str = typer.Option("admin@lab.local", envvar="ESANTE_LAB_ADMIN_EMAIL"),
          admin_password: str | None = typer.Option(None, envvar="ESANTE_LAB_ADMIN_PASSWORD", hidden=True),
          secure_cookies: bool = typer.Option(False, envvar="ESANTE_LAB_SECURE_COOKIES", help="behind HTTPS")) -> None:
    """The reviewers' lab: a web application for sandbox, rehearsal and official sessions (see the README)."""
    from esante.harness.server.serve import ServeOptions, work
    from esante.harness.server.serve import serve as serve_lab

    options = ServeOptions(host, port, data, database, workers, queue, campaigns, admin_email=admin_email,
                           admin_password=admin_password, secure_cookies=secure_cookies)
    try:
        (work if worker else serve_lab)(options, console.print)
    except ValueError as exc:
        console.print(f"[red]cannot serve:[/red] {exc}")
        raise typer.Exit(EXIT_CANNOT_RUN) from None


@app.command()
def submit(campaign: str = typer.Argument(..., help="a campaign the lab knows (insi, psc…)"),
           lab: str = typer.Option(..., envvar="ESANTE_LAB_URL", help="the lab's URL"),
           token: str = typer.Option(..., envvar="ESANTE_LAB_TOKEN", help="an API token (the lab's API tokens page)"),
           candidate: int = typer.Option(..., help="the candidate's id in the lab"),
           kind: str = typer.Option("sandbox", help="sandbox or rehearsal"),
           case: list[str] = typer.Option([], help="play only these case ids"),
           defect: list[str] = typer.Option([], help="reference candidate only: a named defect"),
           out: Path | None = typer.Option(Path("lab-run"), help="where the reports and the bundle go"),
           review: bool = typer.Option(False, "--submit-for-review", help="a rehearsal: submit it for review")) -> None:
    """Run a session in a reviewers' lab from CI: its verdict (the exit code, as esante run), reports, bundle."""
    from esante.harness.server.client import Submission, SubmitError
    from esante.harness.server.client import submit as submit_run

    job = Submission(lab, token, candidate, campaign, kind, case, defect, out, review)
    try:
        outcome = submit_run(job, console.print)
    except SubmitError as exc:
        console.print(f"[red]cannot submit:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(EXIT_CANNOT_RUN) from None
    run_ = outcome.run
    console.print(f"run {run_['id']}: {run_['status']} {run_['verdict'] or ''} {run_['detail']}", soft_wrap=True)
    for name, path in outcome.files.items():
        console.print(f"{name:<12}{path}", soft_wrap=True, highlight=False)
    codes = {"passed": 0, "skipped": 0, "failed": EXIT_FAILED}
    raise typer.Exit(codes.get(run_["verdict"], EXIT_UNSURE) if run_["status"] == "finished" else EXIT_CANNOT_RUN)


if __name__ == "__main__":  # python -m esante.harness.cli (the pytest plugin starts simulators this way)
    app()
