"""The Pro Santé Connect simulator: the ANS's OpenID Connect federator for health professionals."""

from esante.simulators.psc.service import PscSimulator

__all__ = ["PscSimulator"]
