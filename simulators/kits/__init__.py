"""Protocol kits: each protocol written once, used by every simulator that speaks it.

``xml`` (hardened XML reading), ``soap`` (SOAP 1.2, WS-Addressing, catalogued faults), ``mtom`` (MTOM/XOP),
``xmldsig`` (XML signatures, the caller's clock), ``oauth`` (the OAuth 2 / OpenID Connect authorisation server
of PSC and Mon espace santé), ``fhir`` (the FHIR R4 REST layer of Mon espace santé and the MSSanté directory),
``ihe_xds`` (ebRIM, submission sets, CDA and metadata rules of the DMP and MSSanté's XDM inspection), ``mail``
(SMTP submission and IMAP over one store, for MSSanté). A kit
never imports a service; what is national-service-specific stays in the service.
"""
