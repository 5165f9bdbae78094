"""The shipped reference candidate: a correct INSi client and PSC relying party behind the driver API, with named
defects.

It shows editors what "right" looks like, and the project's tests use its defects to prove that each check
catches the mistake it is about.
"""

from esante.harness.reference.app import create_reference_app
from esante.harness.reference.defects import Defects

__all__ = ["Defects", "create_reference_app"]
