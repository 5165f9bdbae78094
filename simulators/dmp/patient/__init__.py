"""The patient's DMP: the records and their state, the HL7v3 patient transactions, authorisations and the
patient-specific services, and who may do what (the rights matrix, the patient's choices)."""
