"""The replay simulator (``esante sim replay DIR``): a service's recorded answers played back."""

from esante.simulators.replay.service import ReplaySimulator

__all__ = ["ReplaySimulator"]
