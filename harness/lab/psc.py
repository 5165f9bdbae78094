"""A Pro Santé Connect access token from a running lab, the way a relying party gets one: the authorisation
code flow with PKCE (RFC 7636), the professional signing in on the federator's login page — played by the
harness's browser, which never leaves the simulators — and the code redeemed with the client's registered
secret (HTTP Basic, :mod:`.oauth`). What a person needs to try a mail client by hand (``esante token``), and
what the tests and benchmarks use instead of writing the flow again.
"""

from __future__ import annotations

import secrets

from esante.harness.lab.oauth import Client, TokenSet, code_flow
from esante.simulators.dataset import load_dataset
from esante.simulators.psc.protocol import AUTHORIZE_PATH, TOKEN_PATH


def _national_id(professional: str, dataset: str) -> str:
    """A data-set id (PS001) as the professional's national id; anything else is taken as a national id."""
    known = {p.id: p.national_id for p in load_dataset(dataset).professionals}
    return known.get(professional, professional)


def psc_token(psc_url: str, ca_pem: bytes | None, professional: str, *, client_id: str = "esante-reference-mss",
              dataset: str = "default", timeout: float = 10.0) -> TokenSet:
    """Sign ``professional`` in at the lab's PSC as the registered client ``client_id``; return its tokens."""
    registered = load_dataset(dataset).oidc_client(client_id)
    client = Client(client_id, registered.secret or "", registered.redirect_uris[0])
    return code_flow(psc_url, ca_pem, client, authorize_path=AUTHORIZE_PATH, token_path=TOKEN_PATH, timeout=timeout,
                     query={"scope": "openid scope_all", "acr_values": "eidas1", "nonce": secrets.token_hex(32)},
                     page={"national_id": _national_id(professional, dataset), "channel": "MOBILE"})
