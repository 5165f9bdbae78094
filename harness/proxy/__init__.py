"""``esante proxy``: an intercepting proxy between a candidate and a service (a national sandbox, or one of the
simulators), built on mitmproxy's addon API, that journals every exchange into the evidence store in the
simulators' ``Exchange`` form, and keeps the upstream's answers for ``esante sim replay`` (``--record DIR``).

* :mod:`.addons`: the mitmproxy addons (one per concern), run inside ``mitmdump``;
* :mod:`.controller`: the proxy's admin API (case context, as a simulator's) and the journal of what the addons
  saw; :mod:`.recorder`: record mode;
* :mod:`.process`: :class:`ProxyHandle`, the controller and mitmdump started together (and why apart);
* :mod:`.environment`: :class:`ProxiedEnvironment`, a campaign's run played through the proxy.

What the proxy captured is judged by ``esante judge`` (:mod:`esante.harness.judge`).
"""

from esante.harness.proxy.environment import ProxiedEnvironment, ProxyClient
from esante.harness.proxy.process import MITMDUMP_ENV, ProxyHandle, ProxyUnavailable, describe, find_mitmdump
from esante.harness.proxy.settings import EXPLICIT, PROXY, REVERSE, ProxySettings, Upstream

__all__ = ["EXPLICIT", "MITMDUMP_ENV", "PROXY", "REVERSE", "ProxiedEnvironment", "ProxyClient", "ProxyHandle",
           "ProxySettings", "ProxyUnavailable", "Upstream", "describe", "find_mitmdump"]
