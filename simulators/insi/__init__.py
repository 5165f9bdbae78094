"""The INSi teleservice simulator (``rechercherInsAvecTraitsIdentite``, ``rechercherInsAvecCarteVitale``)."""

from esante.simulators.insi.service import InsiSimulator

__all__ = ["InsiSimulator"]
