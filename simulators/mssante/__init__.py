"""The MSSanté simulator: SMTP and IMAP with STARTTLS over one message store, the Annuaire Santé FHIR directory
and the mail client autoconfig."""

from esante.simulators.mssante.service import MssanteSimulator

__all__ = ["MssanteSimulator"]
