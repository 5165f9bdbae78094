"""The reference candidate's MSSanté part: a mail-capable health software (sign-in with Pro Santé Connect, the
directory, SMTP and IMAP with STARTTLS, structured documents in XDM, read receipts), with the named defects of
the MSSanté kit. It shares no code with the simulator that judges it, only protocol constants."""

from esante.harness.reference.mssante.part import MssPart

__all__ = ["MssPart"]
