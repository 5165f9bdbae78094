"""Protocol-faithful simulators of the French national digital-health services.

Each simulator is a small package that adds its protocol to the shared core in ``simulators.core``.
"""
