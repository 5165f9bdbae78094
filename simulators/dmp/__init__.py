"""The DMP (Dossier Médical Partagé) simulator: the DMPi interface over SOAP 1.2, WS-Addressing, VIHF and
IHE XDS.b, with the CI-SIS document checks."""

from esante.simulators.dmp.service import DmpSimulator

__all__ = ["DmpSimulator"]
