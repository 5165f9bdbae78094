"""Mon espace santé: pairing, REST-FHIR data exchange, service catalogue and referencing window."""

from esante.simulators.mes.service import MesSimulator

__all__ = ["MesSimulator"]
