"""PSC's discovery document, as psc-edc-proxy-esante's mock of the real one lists it."""

from __future__ import annotations

from typing import Any

from esante.simulators.psc.protocol import (
    AUTHORIZE_PATH,
    CIBA_PATH,
    CLIENT_AUTH_METHODS,
    GRANT_CIBA,
    GRANT_TOKEN_EXCHANGE,
    INTROSPECT_PATH,
    JWKS_PATH,
    LOGOUT_PATH,
    REVOKE_PATH,
    SIGNING_ALG,
    SUPPORTED_SCOPES,
    TOKEN_PATH,
    USERINFO_PATH,
)


def discovery_document(base: str, issuer: str) -> dict[str, Any]:
    """The document at both discovery paths; the authorize endpoint is on the "wallet" base."""
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
        "grant_types_supported": ["authorization_code", "implicit", "refresh_token", "password",
                                  "client_credentials", GRANT_CIBA,
                                  "urn:ietf:params:oauth:grant-type:device_code", GRANT_TOKEN_EXCHANGE],
        "response_types_supported": ["code", "none", "id_token", "token", "id_token token", "code id_token",
                                     "code token", "code id_token token"],
        "response_modes_supported": ["query", "fragment", "form_post"],
        "subject_types_supported": ["public", "pairwise"],
        "id_token_signing_alg_values_supported": [SIGNING_ALG, "ES256", "PS256"],
        "userinfo_signing_alg_values_supported": [SIGNING_ALG, "ES256", "PS256", "none"],
        "id_token_encryption_alg_values_supported": ["RSA-OAEP", "RSA-OAEP-256"],
        "userinfo_encryption_alg_values_supported": ["RSA-OAEP", "RSA-OAEP-256"],
        "token_endpoint_auth_methods_supported": list(CLIENT_AUTH_METHODS),
        "introspection_endpoint_auth_methods_supported": list(CLIENT_AUTH_METHODS),
        "revocation_endpoint_auth_methods_supported": list(CLIENT_AUTH_METHODS),
        "code_challenge_methods_supported": ["plain", "S256"],
        "claims_parameter_supported": True,
        "scopes_supported": list(SUPPORTED_SCOPES),
        "acr_values_supported": ["eidas1"],
        "claims_supported": ["sub", "iss", "auth_time", "name", "given_name", "family_name", "preferred_username",
                             "email", "acr", "SubjectNameID", "SubjectRefPro", "SubjectOrganization",
                             "SubjectRole", "Secteur_Activite", "Palier_Authentification", "otherIds"],
        "request_parameter_supported": True,
        "request_uri_parameter_supported": True,
        "require_request_uri_registration": True,
        "tls_client_certificate_bound_access_tokens": True,
        "authorization_response_iss_parameter_supported": True,
        "backchannel_logout_supported": True,
        "backchannel_logout_session_supported": True,
        "frontchannel_logout_supported": True,
        "frontchannel_logout_session_supported": True,
        "backchannel_token_delivery_modes_supported": ["poll", "ping"],
        "backchannel_authentication_request_signing_alg_values_supported": [SIGNING_ALG, "ES256", "PS256"],
        "backchannel_user_code_parameter_supported": False,
    }
