"""The reference candidate's DMP part: a correct DMP-compatible software (DMPi client, VIHF, CDA documents and
their XDS metadata, XAdES signature document), with the named defects of the DMP kit."""

from esante.harness.reference.dmp.part import DmpPart

__all__ = ["DmpPart"]
