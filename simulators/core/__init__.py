"""The core every simulator shares: app factory, journal, admin API, fault injection, test PKI, XML/SOAP."""
