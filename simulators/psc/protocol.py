"""Pro Santé Connect (PSC) as publicly documented: paths, lifetimes, codes, claim vocabularies.

PSC is the ANS's OpenID Connect federator for health professionals (Keycloak realm ``esante-wallet``). The
simulator serves, under its base URL ``B``:

==========================================================  ===================================================
``B/auth/realms/esante-wallet``                             issuer (``ISSUER_PATH``)
``ISSUER/.well-known/wallet-openid-configuration``          PSC's own discovery path (and the standard one)
``B/wallet/auth``                                           authorize endpoint, on the separate "wallet" base
``ISSUER/protocol/openid-connect/token``                    token (code, refresh, CIBA, token exchange)
``ISSUER/protocol/openid-connect/userinfo``                 userinfo, JSON or signed JWT (``Accept``)
``ISSUER/protocol/openid-connect/certs``                    JWKS
``ISSUER/protocol/openid-connect/token/introspect``         introspection (RFC 7662)
``ISSUER/protocol/openid-connect/revoke``                   revocation (RFC 7009)
``ISSUER/protocol/openid-connect/logout``                   end session (RP-initiated logout)
``ISSUER/protocol/openid-connect/ext/ciba/auth``            CIBA backchannel authentication (poll and ping)
``B/ecps``                                                  the simulated e-CPS app: approve CIBA requests
==========================================================  ===================================================

Keycloak's default authorize path (``ISSUER/protocol/openid-connect/auth``) is deliberately *not* served:
PSC's authorize endpoint lives on another host, and a client that guesses it instead of reading discovery
fails here as it would in production.

Sources (see ``../shared/research/psc-mssante-mes.md``): ansforge/keycloak-prosanteconnect (paths),
ansforge/psc-edc-proxy-esante (discovery document, CIBA), prosanteconnect/proof-of-concept (userinfo),
ansforge/IG-securisation-transport-api-rest (lifetimes, token exchange). Where they are silent, the choice
is ours and says so.
"""

from __future__ import annotations

import uuid
from typing import Final

REALM: Final = "esante-wallet"
ISSUER_PATH: Final = f"/auth/realms/{REALM}"
OIDC: Final = f"{ISSUER_PATH}/protocol/openid-connect"

WALLET_DISCOVERY_PATH: Final = f"{ISSUER_PATH}/.well-known/wallet-openid-configuration"
STANDARD_DISCOVERY_PATH: Final = f"{ISSUER_PATH}/.well-known/openid-configuration"
AUTHORIZE_PATH: Final = "/wallet/auth"
LOGIN_PATH: Final = "/wallet/auth/login"
TOKEN_PATH: Final = f"{OIDC}/token"
USERINFO_PATH: Final = f"{OIDC}/userinfo"
JWKS_PATH: Final = f"{OIDC}/certs"
INTROSPECT_PATH: Final = f"{OIDC}/token/introspect"
REVOKE_PATH: Final = f"{OIDC}/revoke"
LOGOUT_PATH: Final = f"{OIDC}/logout"
CIBA_PATH: Final = f"{OIDC}/ext/ciba/auth"
ECPS_PATH: Final = "/ecps"
#: Keycloak's usual authorize path: not served (see the module docstring).
KEYCLOAK_AUTHORIZE_PATH: Final = f"{OIDC}/auth"

# -- levels, scopes, grant types ---------------------------------------------------------------------------
ACR_EIDAS1: Final = "eidas1"  # the only level PSC accepts in acr_values
REQUIRED_SCOPES: Final = ("openid", "scope_all")
SUPPORTED_SCOPES: Final = ("openid", "scope_all", "eidas1", "eidas2", "rpps", "referentiel", "interop",
                           "offline_access", "profile", "email")

GRANT_CODE: Final = "authorization_code"
GRANT_REFRESH: Final = "refresh_token"
GRANT_CLIENT_CREDENTIALS: Final = "client_credentials"
GRANT_PASSWORD: Final = "password"
GRANT_DEVICE_CODE: Final = "urn:ietf:params:oauth:grant-type:device_code"
GRANT_CIBA: Final = "urn:openid:params:grant-type:ciba"
GRANT_TOKEN_EXCHANGE: Final = "urn:ietf:params:oauth:grant-type:token-exchange"
TOKEN_TYPE_ACCESS: Final = "urn:ietf:params:oauth:token-type:access_token"

CLIENT_AUTH_METHODS: Final = ("private_key_jwt", "client_secret_basic", "client_secret_post", "tls_client_auth",
                              "client_secret_jwt")
#: Keycloak's response types; PSC offers its relying parties the code flow only.
RESPONSE_TYPE_CODE: Final = "code"
KEYCLOAK_RESPONSE_TYPES: Final = ("code", "none", "id_token", "token", "id_token token", "code id_token",
                                  "code token", "code id_token token")
CIBA_CHANNELS: Final = ("CARD", "MOBILE")  # PSC's custom ``channel`` parameter
CIBA_DELIVERY_MODES: Final = ("poll", "ping")

# -- lifetimes (seconds) -----------------------------------------------------------------------------------
ACCESS_TOKEN_LIFETIME: Final = 120      # "2 minutes" (IG sécurisation, errors page)
REFRESH_TOKEN_LIFETIME: Final = 1800    # "30 minutes"
SESSION_MAX_LIFETIME: Final = 4 * 3600  # "session 4 h or 30 min idle" (same page)
SESSION_IDLE_LIFETIME: Final = 1800
CODE_LIFETIME: Final = 60               # Keycloak's default
CIBA_REQUEST_LIFETIME: Final = 120      # expires_in seen in psc-edc-proxy tests
CIBA_INTERVAL: Final = 1                # interval seen in psc-edc-proxy tests
SHORT_ACCESS_TOKEN_LIFETIME: Final = 2  # the ``short_lifetimes`` behaviour, to test refresh in seconds
#: Our choice: how long the simulated professional takes to approve a CIBA request on the e-CPS app.
CIBA_AUTO_APPROVAL_DELAY: Final = 1.0

SIGNING_ALG: Final = "RS256"  # Keycloak realm default

# -- claim vocabularies (userinfo) -------------------------------------------------------------------------
OID_PROFESSION: Final = "1.2.250.1.213.1.1.5.5"           # SubjectRole: profession code ^ this OID
OID_SECTEUR_ACTIVITE: Final = "1.2.250.1.71.4.2.4"        # Secteur_Activite: SAxx ^ this OID
PALIER_AUTHENTIFICATION: Final = "APPPRIP3^1.2.250.1.213.1.5.1.1.1"
PSI_LOCALE: Final = "1.2.250.1.213.1.3.1.1"
#: Keycloak federated ids look like ``f:<provider uuid>:<national id>``; the provider uuid is ours.
FEDERATION_PROVIDER: Final = uuid.uuid5(uuid.NAMESPACE_URL, "https://esante-conformance.test/psc/provider")


def subject_of(national_id: str) -> str:
    """The ``sub`` PSC gives a professional: a Keycloak federated id, *not* the national identifier."""
    return f"f:{FEDERATION_PROVIDER}:{national_id}"
