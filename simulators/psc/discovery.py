"""PSC's discovery document: what the simulator serves, and only that (``tests/test_psc_discovery.py`` holds
it to the routes, the grants and the kit's methods). Its shape follows the real one (psc-edc-proxy-esante's
mock of it, a Keycloak realm's); what the real document lists and the simulator does not serve (implicit and
hybrid flows, the password and device grants, pairwise subjects, encrypted tokens, request objects by
reference, pushed authorization requests, dynamic registration, front-channel logout) is left out, and the
README says so."""

from __future__ import annotations

from typing import Any

from esante.simulators.kits.oauth.clients import AUTH_METHODS, HMAC_ALGORITHMS, RSA_ALGORITHMS
from esante.simulators.kits.oauth.oidc import REQUEST_OBJECT_ALGORITHMS
from esante.simulators.kits.oauth.redirects import RESPONSE_MODES
from esante.simulators.psc.grants import GRANTS
from esante.simulators.psc.protocol import (
    ACR_EIDAS1,
    AUTHORIZE_PATH,
    CIBA_DELIVERY_MODES,
    CIBA_PATH,
    INTROSPECT_PATH,
    JWKS_PATH,
    LOGOUT_PATH,
    RESPONSE_TYPE_CODE,
    REVOKE_PATH,
    SIGNING_ALG,
    SUPPORTED_SCOPES,
    TOKEN_PATH,
    USERINFO_PATH,
)

#: The claims userinfo and the ID token give (PSC's, after Keycloak's standard ones).
CLAIMS: tuple[str, ...] = ("sub", "iss", "aud", "auth_time", "acr", "at_hash", "nonce", "sid", "given_name",
                           "family_name", "preferred_username", "email", "email_verified", "SubjectNameID",
                           "SubjectRefPro", "SubjectOrganization", "SubjectOrganizationID", "SubjectRole",
                           "Secteur_Activite", "Mode_Acces_Raison", "Acces_Regulation_Medicale", "UITVersion",
                           "Palier_Authentification", "PSI_Locale", "otherIds")


def discovery_document(base: str, issuer: str) -> dict[str, Any]:
    """The document at both discovery paths; the authorize endpoint is on the "wallet" base."""
    client_auth = list(AUTH_METHODS)
    assertion_algorithms = [*RSA_ALGORITHMS, *HMAC_ALGORITHMS]
    return {
        "issuer": issuer,
        "authorization_endpoint": base + AUTHORIZE_PATH,
        "token_endpoint": base + TOKEN_PATH,
        "introspection_endpoint": base + INTROSPECT_PATH,
        "userinfo_endpoint": base + USERINFO_PATH,
        "end_session_endpoint": base + LOGOUT_PATH,
        "jwks_uri": base + JWKS_PATH,
        "revocation_endpoint": base + REVOKE_PATH,
        "backchannel_authentication_endpoint": base + CIBA_PATH,
        "grant_types_supported": list(GRANTS),
        "response_types_supported": [RESPONSE_TYPE_CODE],
        "response_modes_supported": list(RESPONSE_MODES),
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [SIGNING_ALG],
        "userinfo_signing_alg_values_supported": [SIGNING_ALG],
        "request_object_signing_alg_values_supported": list(REQUEST_OBJECT_ALGORITHMS),
        "token_endpoint_auth_methods_supported": client_auth,
        "token_endpoint_auth_signing_alg_values_supported": assertion_algorithms,
        "introspection_endpoint_auth_methods_supported": client_auth,
        "introspection_endpoint_auth_signing_alg_values_supported": assertion_algorithms,
        "revocation_endpoint_auth_methods_supported": client_auth,
        "revocation_endpoint_auth_signing_alg_values_supported": assertion_algorithms,
        "code_challenge_methods_supported": ["plain", "S256"],
        "claims_parameter_supported": True,
        "claim_types_supported": ["normal"],
        "claims_supported": list(CLAIMS),
        "scopes_supported": list(SUPPORTED_SCOPES),
        "acr_values_supported": [ACR_EIDAS1],
        "request_parameter_supported": True,
        "request_uri_parameter_supported": False,
        "tls_client_certificate_bound_access_tokens": True,
        "authorization_response_iss_parameter_supported": True,
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "backchannel_token_delivery_modes_supported": list(CIBA_DELIVERY_MODES),
        "backchannel_user_code_parameter_supported": False,
    }
