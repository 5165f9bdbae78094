"""esante-conformance test suite."""
