"""FHIR R4 REST kit, written once for the simulated FHIR servers (Mon espace santé, the MSSanté directory):

* :mod:`.rest` — the RESTful API under a base (routing, read/vread/history, create/update with versions and
  conditions, search, transaction hooks), for a service's :class:`~.rest.Backend`;
* :mod:`.capability` — the CapabilityStatement and SMART configuration, from the routed :class:`ResourceType` table;
* :mod:`.search` and :mod:`.values` — R4 search: parameters, their types and matching, paging, ``searchset``;
* :mod:`.validation` — bodies held to HL7's R4 JSON Schema (``schema/``) and fhir.resources' models;
* :mod:`.store` — versioned resources; :mod:`.bodies` — bounded reading; :mod:`.negotiation` and :mod:`.media` —
  FHIR JSON on the wire; :mod:`.errors` — every refusal an ``OperationOutcome``; :mod:`.notes` — what is noted.

Written by hand (no maintained Python FHIR *server* library fits a simulator that must be strict, observable
and small); models, schema validation and HTTP come from fhir.resources, jsonschema and Starlette. Import from
the modules.
"""
