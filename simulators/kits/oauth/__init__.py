"""OAuth 2.0 / OpenID Connect authorization-server kit, written once for the simulated servers (Pro Santé
Connect, Mon espace santé): the RFC 6749 error form (:mod:`.errors`), request reading (:mod:`.requests`),
PKCE (:mod:`.pkce`), redirect URIs and responses (:mod:`.redirects`), client authentication
(:mod:`.clients`), pending authorizations, codes and tokens (:mod:`.server`), the user's pages
(:mod:`.pages`), the notes every server keeps (:mod:`.notes`) and routes answering their errors
(:mod:`.routes`). Import from the modules.
"""
