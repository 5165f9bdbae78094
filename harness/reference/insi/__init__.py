"""The reference candidate's INSi part: a correct INSi client and the identity-vigilance logic of a software
that stores patient identities, with the named defects of the INSi kit."""

from esante.harness.reference.insi.part import InsiPart

__all__ = ["InsiPart"]
