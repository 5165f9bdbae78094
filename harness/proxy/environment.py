"""A campaign played through the proxy: the run's simulators behind ``esante proxy``, the proxy filed under each
case as they are.

:class:`ProxiedEnvironment` wraps the environment of a run (its simulators and evidence store): the candidate is
given the proxy's URLs (reverse mode) or the services' own (explicit mode, the candidate uses the proxy), and the
runner drives the proxy's admin API as a simulator's. The run is judged, as without the proxy, on what the
simulators journaled; what the proxy captured sits beside it in the same store, for ``esante judge``.
"""

from __future__ import annotations

from esante.harness.environment import SimulatorClient
from esante.harness.proxy.process import ProxyHandle
from esante.harness.proxy.settings import PROXY
from esante.harness.runner import Environment
from esante.simulators.core.evidence import EvidenceStore
from esante.simulators.core.journal import Exchange


class ProxyClient(SimulatorClient):
    """The proxy's admin API, as the runner drives a simulator's. Its capture is not the run's observation (the
    simulators' journals are: judging both would count every exchange twice), so its journal reads empty here."""

    def journal(self, run_id: str, case_id: str) -> list[Exchange]:
        return []


class ProxiedEnvironment:
    """``inner``'s simulators reached by the candidate through ``proxy`` (which journals into ``inner.store``)."""

    def __init__(self, inner: Environment, proxy: ProxyHandle) -> None:
        self.inner, self.proxy = inner, proxy
        self.store: EvidenceStore = inner.store
        self.ca_pem = inner.ca_pem
        self.clients: dict[str, SimulatorClient] = {
            **inner.clients, PROXY: ProxyClient(PROXY, proxy.admin_url, proxy.settings.admin_token)}

    @property
    def endpoints(self) -> dict[str, str]:
        return self.proxy.endpoints(self.inner.endpoints)

    def close(self) -> None:
        self.clients[PROXY].close()

    def __enter__(self) -> ProxiedEnvironment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
