"""The replay simulator's constants: where recordings and matching rules live, and what a masked secret reads.

A recordings folder holds one folder per service (``insi/``), one YAML file per recorded exchange in it
(``0001-INSI-01-RECSANSVITALE.yaml``), and optionally ``rules.yaml``: how a request finds its recorded answer,
overriding the shipped rules (``rules.yaml`` beside this module).
"""

from __future__ import annotations

#: A recording's file name ends so; names sort in recording order.
RECORDING_SUFFIX = ".yaml"
#: The matching rules a recordings folder may hold (else the shipped ones apply).
RULES_FILE = "rules.yaml"
#: What a masked secret is replaced by in a recording.
MASKED = "<masked by esante proxy>"
#: The version of the recording format, written in every file.
FORMAT = 1
