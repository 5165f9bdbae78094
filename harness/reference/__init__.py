"""The shipped reference candidate: a correct client of every simulated service behind the driver API (one
part per service, ``harness/reference/<service>/``, found by the ``esante.reference`` entry point), with the
named defects the test kits declare.

It shows editors what "right" looks like, and the project's tests use its defects to prove that each check
catches the mistake it is about. It shares no code with the judge: it imports the driver contract, protocol
constants, the test PKI and the data set, nothing else of the simulators.
"""

from esante.harness.reference.app import create_reference_app
from esante.harness.reference.defects import Defects

__all__ = ["Defects", "create_reference_app"]
