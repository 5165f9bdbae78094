"""``esante``: the command line of esante-conformance.

Exit codes of ``esante run`` (for CI): 0 every case passed (or was skipped, some case having been played),
1 at least one case failed, 3 no failure but an error or an inconclusive case, or no case played at all, 4 the run
could not start (bad campaign, unknown case id, nothing to play, an output folder holding a run, unreachable
candidate, a defect of another campaign), 130 interrupted by SIGINT (Ctrl-C) and 143 by SIGTERM: the reports and
the bundle are written and say so (an operator session interrupted is saved instead: ``--resume`` takes it up).
``esante verify``: 0 intact, 1 altered. ``esante report``: 0 written, 4 no run there. Usage errors (a missing file,
an unknown option): 2.

When standard output is not a terminal (a CI log), lines are never wrapped and ``esante run`` prints one line
per case as it goes; on a terminal it shows a progress bar. Each command is one function below; sub-commands
(``esante list ...``, ``esante mes ...``) are typer apps of their own, added with ``app.add_typer``.
"""

from __future__ import annotations

import errno
import json
import shlex
import socket
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from esante.harness.actions import contract_app, load_actions
from esante.harness.campaign import CampaignError, LoadedCampaign, Mode, campaign_schema
from esante.harness.checks import load_checks
from esante.harness.driver import DriverError
from esante.harness.kits import defects, kits
from esante.reports.model import RunResult, Verdict

if TYPE_CHECKING:
    from esante.harness.lab import LabState
    from esante.harness.session import RunOutput

app = typer.Typer(help="Conformance simulators and certification campaigns for French digital-health services.",
                  no_args_is_help=True, add_completion=False)
console = Console()
EXIT_FAILED, EXIT_UNSURE, EXIT_CANNOT_RUN, EXIT_INTERRUPTED, EXIT_TERMINATED = 1, 3, 4, 130, 143
#: The width of the output when it is not a terminal: wide enough that nothing is ever wrapped.
UNWRAPPED = 100_000


@app.callback()
def _output() -> None:
    """Fit the output to where it goes: a terminal's width, or no wrapping at all in a log."""
    if not console.is_terminal:
        console.soft_wrap = True
        console.width = UNWRAPPED


def _fail(what: str, why: str, code: int = EXIT_CANNOT_RUN) -> NoReturn:
    """Say what went wrong (``why`` printed as it is: no markup, whatever brackets it holds) and exit."""
    console.print(Text.assemble((f"{what}: ", "red"), why), soft_wrap=True, highlight=False)
    raise typer.Exit(code)


def exit_code(result: RunResult) -> int:
    verdicts = {c.verdict for c in result.cases}
    if result.interrupted:
        return EXIT_TERMINATED if result.interrupted == "SIGTERM" else EXIT_INTERRUPTED
    if verdicts <= {Verdict.SKIPPED}:  # nothing was played: never a green build
        return EXIT_UNSURE
    if Verdict.FAILED in verdicts:
        return EXIT_FAILED
    if verdicts & {Verdict.ERROR, Verdict.INCONCLUSIVE}:
        return EXIT_UNSURE
    return 0


@app.command()
def run(campaign: str = typer.Argument(..., help="campaign file, or a shipped campaign name (insi)"),
        candidate: str = typer.Option("reference", help="driver base URL of the candidate, or 'reference'"),
        out: Path | None = typer.Option(None, help="output folder (default runs/<run id>/)"),
        defect: list[str] = typer.Option([], help="reference candidate only: switch on a named defect of this "
                                                  "campaign (esante list defects)"),
        operator: bool = typer.Option(False, help="a person plays the candidate at the prompts"),
        resume: Path | None = typer.Option(None, help="with --operator: take up the interrupted session saved in "
                                                      "this run folder", file_okay=False),
        case: list[str] = typer.Option([], help="play only these case ids"),
        plain_http: bool = typer.Option(False, help="serve the simulators over plain HTTP instead of HTTPS"),
        signing_key: Path | None = typer.Option(None, help="Ed25519 key signing the bundle"),
        simulators: str = typer.Option("local", help="where the simulators run: local (this process), containers "
                                                     "(started from the image for the run), or a YAML file with "
                                                     "the URL of each simulator already running"),
        image: str | None = typer.Option(None, envvar="ESANTE_IMAGE", help="--simulators containers: the image "
                                                                           "[default: esante-conformance:latest]"),
        force: bool = typer.Option(False, "--force", help="replace the run the --out folder already holds")
        ) -> None:
    """Play a campaign against a candidate and write the reports and the evidence bundle."""
    from esante.harness.run_display import RunDisplay
    from esante.harness.runner import Interrupted
    from esante.harness.session import RunInterrupted, RunRequest, play

    if resume is not None and (not operator or case):
        raise typer.BadParameter("--resume takes up an operator session as it was begun: add --operator, "
                                 "without --case", param_hint="--resume")
    request = RunRequest(campaign=campaign, candidate=candidate, out_dir=resume or out, defects=defect,
                         mode=Mode.OPERATOR if operator else Mode.DRIVER, case_ids=set(case) or None,
                         tls=not plain_http, signing_key=signing_key, simulators=simulators, image=image,
                         resume=resume is not None, force=force)
    again = ["esante", "run", campaign, "--candidate", candidate, *(a for d in defect for a in ("--defect", d)),
             *(["--operator"] if operator else []), *(["--plain-http"] if plain_http else []),
             *(["--simulators", simulators] if simulators != "local" else [])]
    try:
        with RunDisplay(console, live=console.is_terminal and not operator) as display:
            output = play(request, progress=display)
    except RunInterrupted as stopped:
        console.print(Text(f"\n{stopped}"), soft_wrap=True)
        console.print(Text("resume: " + shlex.join([*again, "--resume", str(stopped.out_dir)])), soft_wrap=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except Interrupted as stop:
        _fail("interrupted", f"{stop.signal_name} before the run began: nothing to report",
              EXIT_TERMINATED if stop.signal_name == "SIGTERM" else EXIT_INTERRUPTED)
    except (CampaignError, FileNotFoundError, DriverError, ValueError) as exc:
        _fail("cannot run", str(exc))
    _summary(output, again)
    raise typer.Exit(exit_code(output.result))


def _summary(output: RunOutput, again: list[str]) -> None:
    from esante.reports.model import interruption
    from esante.reports.terminal import requirement_table, what_next

    result = output.result
    counts = ", ".join(f"{n} {v}" for v, n in result.counts().items() if n)
    console.print(Text.assemble("\n", (f"{result.campaign.id} {result.campaign.version}", "bold"),
                                f" against {result.candidate.name} {result.candidate.version}: {counts}"))
    console.print(requirement_table(result))
    if result.interrupted:
        console.print(Text(interruption(result), style="red"), soft_wrap=True)
    for label, value in (("run id", result.run_id), ("HTML report", output.reports.html),
                         ("PDF report", output.reports.pdf), ("JSON report", output.reports.json),
                         ("JUnit XML", output.reports.junit), ("evidence", output.reports.bundle)):
        console.print(Text(f"{label:<12}{value}"), soft_wrap=True)
    steps = what_next(result, output.reports.html, output.reports.pdf, output.reports.bundle, again)
    console.print("next: " + "\n      ".join(steps), soft_wrap=True, markup=False, highlight=False)


@app.command()
def report(run_dir: Path = typer.Argument(..., help="a run's folder (report.json, evidence.sqlite, "
                                                    "evidence-bundle.zip)"),
           pdf: bool = typer.Option(False, "--pdf", help="write report.pdf"),
           html: bool = typer.Option(False, "--html", help="write report.html"),
           json_: bool = typer.Option(False, "--json", help="write report.json (in the current schema)"),
           out: Path | None = typer.Option(None, help="write there instead of into RUN_DIR"),
           signing_key: Path | None = typer.Option(None, help="a rebuilt run: Ed25519 key signing its bundle")) -> None:
    """Render a finished run's reports again from its report.json (the PDF when no format is named); the
    evidence bundle is left as it was signed. A run killed before it wrote its reports (no report.json) is
    rebuilt from its evidence store: every report and a signed bundle, marked incomplete."""
    from esante.reports.model import interruption
    from esante.reports.rerender import RunFolderError, needs_rebuild, rebuild_folder, rerender

    formats = tuple(name for name, wanted in (("pdf", pdf), ("html", html), ("json", json_)) if wanted) or ("pdf",)
    try:
        if needs_rebuild(run_dir):
            result, paths = rebuild_folder(run_dir, out, signing_key)
            console.print(Text(f"rebuilt from the evidence store: {interruption(result) or 'complete run'}"),
                          soft_wrap=True)
            written = {"JSON report": paths.json, "JUnit XML": paths.junit, "HTML report": paths.html,
                       "evidence": paths.bundle, "PDF report": paths.pdf}
        else:
            written = {f"{name.upper():<4} report": path for name, path in rerender(run_dir, formats, out).items()}
    except RunFolderError as exc:
        _fail("cannot render", str(exc))
    for label, path in written.items():
        console.print(f"{label} {path}", soft_wrap=True, highlight=False)


@app.command()
def verify(bundle: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True,
                                         help="an evidence bundle (evidence-bundle.zip)"),
           trusted_key: Path | None = typer.Option(None, exists=True, dir_okay=False,
                                                   help="PEM public key the bundle must be signed with")) -> None:
    """Check that an evidence bundle is intact; name what was altered."""
    from esante.reports import verify_bundle

    outcome = verify_bundle(bundle, trusted_key.read_bytes() if trusted_key else None)
    if outcome.ok:
        console.print(Text.assemble(("intact", "green"), f": run {outcome.run_id}, {outcome.files_checked} files, "
                                    f"signed by {outcome.signer_fingerprint}"), soft_wrap=True)
        for problem in outcome.problems:
            console.print(Text(f"  note: {problem}"), soft_wrap=True)
        return
    folders = _folder_entries(bundle)
    problems = [p for p in outcome.problems if p not in outcome.notes
                and not any(p.endswith(f) or f"{f}:" in p for f in folders)]  # what the folder entries trip
    if folders:
        shown = ", ".join(folders[:3]) + (", …" if len(folders) > 3 else "")
        rezipped = (f"the archive was re-zipped: it holds {len(folders)} folder entries ({shown}) that a signed "
                    "bundle never has; verify the bundle as the run wrote it")
        if not problems:
            _fail(f"NOT AS SIGNED: {bundle}", rezipped + " (every file the manifest lists is intact)", 1)
        problems.insert(0, rezipped)
    console.print(Text.assemble(("ALTERED", "red"), f": {bundle}"), soft_wrap=True)
    for problem in problems:
        console.print(Text(f"  - {problem}"), soft_wrap=True)
    for note in outcome.notes:
        console.print(Text(f"  note: {note}"), soft_wrap=True)
    raise typer.Exit(1)


def _folder_entries(bundle: Path) -> list[str]:
    """The folder entries of a zip archive (``exchanges/``): what ``zip -r`` adds, and a signed bundle never has."""
    try:
        with zipfile.ZipFile(bundle) as archive:
            return [info.filename for info in archive.infolist() if info.is_dir()]
    except (zipfile.BadZipFile, OSError, ValueError):
        return []


@app.command()
def sim(name: str = typer.Argument(..., envvar="ESANTE_SIMULATOR", help="simulator name (insi)"),
        recordings: Path | None = typer.Argument(None, help="replay: the recordings folder (esante proxy --record)"),
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
                                               "ciba=manual for psc"),
        stop_with_parent: bool = typer.Option(False, hidden=True, help="stop when the process that started this "
                                                                       "one is gone (the pytest plugin's)")) -> None:
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
    if recordings is not None:
        settings.options["recordings"] = str(recordings)
    try:
        simulator = build_simulator(name, settings)
    except (KeyError, TypeError, ValueError) as exc:  # unknown simulator, or an option it does not take
        _fail("cannot start", str(exc.args[0] if isinstance(exc, KeyError) and exc.args else exc))
    taken = _port_taken(host, port)
    if taken:  # said before the banner, and before the evidence store is created (by create_app)
        _fail(f"cannot serve on {host}:{port}", taken)
    tls_settings = TlsSettings(pki_dir=pki, require_client_cert=mtls,
                               hostnames=tuple(hostname)) if tls or mtls else None
    console.print(f"{simulator.title} simulator on {'https' if tls_settings else 'http'}://{host}:{port} "
                  f"(evidence {evidence}); admin token: {settings.admin_token}")
    if stop_with_parent:
        _stop_with_parent()
    serve(create_app(simulator, settings), host=host, port=port, tls=tls_settings)


def _stop_with_parent(poll: float = 0.5, grace: float = 10.0) -> None:
    """Stop as on SIGTERM once this process's parent is gone (it is then adopted: its parent id changes), and for
    good ``grace`` seconds later: a simulator a test session started must not outlive it, however it ended."""
    import os
    import signal
    import threading
    import time

    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace)
        os._exit(1)

    threading.Thread(target=watch, name="stop-with-parent", daemon=True).start()


def _port_taken(host: str, port: int) -> str | None:
    """Why ``host:port`` cannot be listened on (in use, no such address), or None; bound as uvicorn binds."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return "the port is in use (another simulator, or another program)"
        return exc.strerror or str(exc)
    return None


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
        _fail("cannot start", f"unknown simulator(s) {', '.join(unknown)}; known: {', '.join(simulator_names())}")
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
    from esante.harness.lab.oauth import TokenRefused
    from esante.harness.lab.psc import psc_token

    try:
        running = read_state(state)
        tokens = psc_token(running.url("psc"), running.ca_pem(), professional, client_id=client,
                           dataset=running.dataset)
    except (FileNotFoundError, ValueError, KeyError, TokenRefused) as exc:
        _fail("no token", str(exc))
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


@app.command()
def proxy(upstream: list[str] = typer.Option(..., help="a service behind the proxy, SERVICE=URL "
                                                       "(insi=https://host:port); repeat for several"),
          mode: str = typer.Option("reverse", help="reverse (the candidate calls the proxy) or explicit (the "
                                                   "candidate keeps the services' URLs and uses the proxy)"),
          host: str = typer.Option("127.0.0.1", help="the address to listen on"),
          port: int = typer.Option(8080, help="explicit mode: the proxy's port"),
          service_port: list[str] = typer.Option([], help="reverse mode: a fixed port, SERVICE=PORT"),
          admin_port: int = typer.Option(8079, help="the admin API's port (case context, journal)"),
          evidence: Path = typer.Option(Path("evidence.sqlite"), envvar="ESANTE_EVIDENCE"),
          pki_dir: Path | None = typer.Option(None, envvar="ESANTE_PKI_DIR", help="the test PKI: its CA signs the "
                                                                               "certificates the candidate sees"),
          upstream_ca: Path | None = typer.Option(None, help="the CA the upstream's certificate chains to "
                                                             "[default: the public CAs]"),
          client_certs: Path | None = typer.Option(None, help="a folder of the candidate's client certificates "
                                                              "with their keys: the one it presents goes upstream"),
          client_cert: Path | None = typer.Option(None, help="a client certificate with its key, presented "
                                                             "upstream otherwise"),
          record: Path | None = typer.Option(None, help="keep each upstream answer with its request in this folder "
                                                        "(for esante sim replay)"),
          mask_secrets: bool = typer.Option(False, help="record: mask tokens and assertions (always flagged)"),
          mitmdump: str | None = typer.Option(None, envvar="ESANTE_MITMDUMP", help="mitmproxy's mitmdump "
                                                                               "[default: on the PATH]")) -> None:
    """Capture a candidate's traffic with a service into the evidence store (mitmproxy), until Ctrl-C."""
    from esante.harness.proxy import ProxyHandle, ProxySettings, ProxyUnavailable, Upstream, describe
    from esante.simulators.core.pki import default_pki_dir

    try:
        settings = ProxySettings(
            [Upstream.parse(u) for u in upstream], mode=mode, host=host, port=port,
            ports={k: int(v) for k, v in _pairs(service_port, "=").items()}, admin_port=admin_port,
            evidence_path=evidence, pki_dir=pki_dir or default_pki_dir(), upstream_ca=upstream_ca,
            client_certs=client_certs, client_cert=client_cert, record_dir=record, mask_secrets=mask_secrets,
            mitmdump=mitmdump)
        with ProxyHandle(settings) as running:
            console.print(describe(running), soft_wrap=True, highlight=False, markup=False)
            _wait_for_interrupt()
    except (ValueError, ProxyUnavailable) as exc:
        console.print(f"[red]cannot proxy:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(EXIT_CANNOT_RUN) from None
    console.print("proxy stopped")


@app.command()
def judge(campaign: str = typer.Argument(..., help="campaign file, or a shipped campaign name (insi)"),
          evidence: Path = typer.Option(..., help="the capture: an evidence store, or a folder holding one"),
          run_id: str | None = typer.Option(None, "--run", help="the captured run [default: the last captured]"),
          case: list[str] = typer.Option([], help="judge only these case ids"),
          out: Path | None = typer.Option(None, help="output folder (default runs/<judge id>/)"),
          signing_key: Path | None = typer.Option(None, help="Ed25519 key signing the bundle")) -> None:
    """Run a campaign's checks on captured traffic (esante proxy) and write the reports and the bundle."""
    from esante.harness.judge import JudgeError, JudgeRequest
    from esante.harness.judge import judge as judge_capture
    from esante.harness.run_display import print_results

    try:
        output = judge_capture(JudgeRequest(campaign, evidence, out_dir=out, run_id=run_id,
                                            case_ids=set(case) or None, signing_key=signing_key))
    except (CampaignError, FileNotFoundError, JudgeError) as exc:
        console.print(f"[red]cannot judge:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(EXIT_CANNOT_RUN) from None
    print_results(console, output.result.cases)
    console.print(f"judgement   {output.result.run_id} of {evidence}\nHTML report {output.reports.html}\n"
                  f"PDF report  {output.reports.pdf}\nevidence    {output.reports.bundle}", soft_wrap=True)
    raise typer.Exit(exit_code(output.result))


@app.command("check-campaign")
def check_campaign(campaign: str = typer.Argument(..., help="campaign file, or a shipped campaign name")) -> None:
    """Validate a campaign as a run would play it: every problem (format, unknown checks, actions, simulators,
    data-set references, undeclared requirements) with its file, line and field, in one pass."""
    from esante.harness.session import load

    try:
        loaded = load(campaign)
    except FileNotFoundError as exc:
        _fail("cannot check", str(exc))
    except CampaignError as exc:
        problems = str(exc).splitlines()
        for problem in problems:
            console.print(Text(problem), soft_wrap=True, highlight=False)
        _fail("invalid", f"{len(problems)} problem(s)", 1)
    console.print(Text.assemble(("valid", "green"), f": {loaded.campaign.campaign.id} "
                                f"{loaded.campaign.campaign.version}, {len(loaded.campaign.cases)} cases, "
                                f"sha256 {loaded.sha256}"), soft_wrap=True)


list_app = typer.Typer(help="What the installed test kits hold: campaigns, checks, defects, driver actions.",
                       no_args_is_help=True)
app.add_typer(list_app, name="list")


def _campaigns() -> dict[str, LoadedCampaign | str]:
    """Each kit's campaign, checked; or why it does not load."""
    from esante.harness.session import load

    found: dict[str, LoadedCampaign | str] = {}
    for name in kits():
        try:
            found[name] = load(name)
        except (CampaignError, FileNotFoundError) as exc:
            found[name] = str(exc).splitlines()[0]
    return found


@list_app.command("campaigns")
def list_campaigns() -> None:
    """The shipped campaigns (run one with ``esante run NAME``)."""
    table = Table("campaign", "id", "version", "cases", "simulators", "title")
    for name, loaded in _campaigns().items():
        if isinstance(loaded, str):
            table.add_row(name, "", "", "", "", Text(f"does not load: {loaded}", style="red"))
            continue
        header = loaded.campaign.campaign
        table.add_row(name, header.id, header.version, str(len(loaded.campaign.cases)), ", ".join(header.simulators),
                      Text(header.title))
    console.print(table)


@list_app.command("checks")
def list_checks() -> None:
    """Every registered check, the requirements it judges and the campaigns that use it."""
    using: dict[str, set[str]] = {}
    for name, loaded in _campaigns().items():
        for case in [] if isinstance(loaded, str) else loaded.campaign.cases:
            for expectation in case.expect:
                using.setdefault(expectation.check, set()).add(name)
    table = Table("check", "requirements", "campaigns", "title")
    for name, registered in sorted(load_checks().items()):
        table.add_row(name, ", ".join(registered.requirements), ", ".join(sorted(using.get(name, ()))) or "none",
                      Text(registered.title))
    console.print(table)


app.command("list-checks", hidden=True, help="Same as esante list checks.")(list_checks)


@list_app.command("defects")
def list_defects(campaign: str | None = typer.Option(None, help="only this campaign's defects")) -> None:
    """The reference candidate's named defects, per campaign: the rule (check) each breaks and the cases it fails
    (``esante run CAMPAIGN --defect NAME`` shows it failing)."""
    catalogue = sorted(defects().values(), key=lambda d: (d.campaign, d.name))
    if campaign is not None and campaign not in kits():
        raise typer.BadParameter(f"no campaign {campaign!r}; known: {', '.join(kits())}", param_hint="--campaign")
    for name in kits():
        shown = [d for d in catalogue if d.campaign == name]
        if not shown or campaign not in (None, name):
            continue
        table = Table("defect", "rule", "fails", "description", title=f"{name}: {len(shown)} defects",
                      title_justify="left")
        for defect in shown:
            table.add_row(defect.name, defect.rule, ", ".join(defect.fails), Text(defect.description))
        console.print(table)


@list_app.command("actions")
def list_actions() -> None:
    """The driver actions a campaign step may name: their parameters, their report and the outcomes they may
    report (``esante schema driver`` has them in full)."""
    table = Table("action", "parameters", "report", "outcomes", "title")
    for name, spec in sorted(load_actions().items()):
        parameters = ", ".join(spec.params.model_fields) if spec.params else "(free)"
        outcomes = ", ".join(o.value for o in spec.outcomes) or "any"
        table.add_row(name, parameters or "none", spec.report.__name__, outcomes, Text(spec.title))
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
            _fail(str(file), f"larger than {MAX_DOSSIER_BYTES} bytes", 1)
        text = file.read_bytes()
    except OSError as exc:
        _fail(str(file), exc.strerror or str(exc))
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
