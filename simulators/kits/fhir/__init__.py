"""FHIR R4 REST kit, written once for the simulated FHIR servers (Mon espace santé, the MSSanté directory):
the ``OperationOutcome`` error (:mod:`.errors`), the FHIR JSON media type (:mod:`.media`), bounded reading and
structural validation of resources with fhir.resources (:mod:`.bodies`), search result pages
(:mod:`.search`) and the notes a FHIR server keeps (:mod:`.notes`). Import from the modules.
"""
