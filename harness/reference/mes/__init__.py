"""The reference candidate's Mon espace santé part: a partner app (a measures notebook that also shares
documents and keeps an agenda) as a correct partner builds it, with the named defects of the MES kit."""

from esante.harness.reference.mes.part import MesPart

__all__ = ["MesPart"]
