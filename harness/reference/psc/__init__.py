"""The reference candidate's Pro Santé Connect part: a web application (and a thick client's intermediary
server) signing professionals in with PSC as a correct relying party does, with the named defects of the PSC
kit."""

from esante.harness.reference.psc.part import PscPart

__all__ = ["PscPart"]
