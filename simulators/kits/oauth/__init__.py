"""OAuth 2.0 / OpenID Connect authorization-server kit, written once for the simulated servers (Pro Santé
Connect, Mon espace santé): the RFC 6749 error form (:mod:`.errors`), request reading and the response_type
and grant_type checks (:mod:`.requests`), PKCE (:mod:`.pkce`), redirect URIs and the response modes
(:mod:`.redirects`), client authentication (:mod:`.clients`), what OpenID Connect adds — request objects, the
claims parameter, at_hash (:mod:`.oidc`) —, pending authorizations, codes and tokens with their expiry and
bounded memory (:mod:`.server`), the user's pages (:mod:`.pages`), the notes every server keeps
(:mod:`.notes`) and routes answering their errors (:mod:`.routes`). Import from the modules.
"""
