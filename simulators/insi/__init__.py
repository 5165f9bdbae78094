"""The INSi teleservice simulator (``rechercherInsAvecTraitsIdentite``, ``rechercherInsAvecCarteVitale``)."""

from simulators.insi.service import InsiSimulator

__all__ = ["InsiSimulator"]
