"""How a DMPi call arrives: SOAP 1.2 or MTOM, WS-Addressing, the transaction it names, and the VIHF."""
