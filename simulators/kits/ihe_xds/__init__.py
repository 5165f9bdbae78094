"""IHE XDS.b as the French CI-SIS profiles it, written once for every simulator that reads XDS content: the DMP
(ITI-41 feeds, ITI-18 queries, ITI-57 updates) and MSSanté (the XDM archive of a structured mail).

* :mod:`.ebrim` — the ebRIM 3.0 metadata model (DocumentEntry, SubmissionSet, Association), read and written;
* :mod:`.ebrs` — registry answers (``RegistryResponse``, ``RegistryErrorList``), statuses, namespaces;
* :mod:`.query` — ITI-18 stored queries (FindDocuments, GetDocuments) and which entries match them;
* :mod:`.hl7v2` — the HL7 v2 types metadata carries as strings (CX, XCN, XON);
* :mod:`.authorities` — the French identifier authorities (INS, national PS and structure ids);
* :mod:`.cda` and :mod:`.cda_rules` — the CDA R2 header and the CI-SIS minimal structuring rules;
* :mod:`.value_sets`, :mod:`.metadata_rules` — the CI-SIS value sets and XDS metadata rules;
* :mod:`.agreement` — metadata that must repeat the CDA header;
* :mod:`.signature` — the IHE DSG signature document of a submission;
* :mod:`.submission` — all of it in one pass over a submission, as :class:`~esante.simulators.core.findings.Finding`\\ s
  grouped by the :mod:`.rules` they break.

What only one national service decides stays in its simulator (the DMP's own confidentiality codes, its
rights matrix, its VIHF).
"""
