"""The image's health check: is the simulator this container serves answering on its port?

Reads the container's own settings (``ESANTE_SIMULATOR``, ``ESANTE_PORT``, ``ESANTE_TLS``/``ESANTE_MTLS``,
``ESANTE_PKI_DIR``) so that one HEALTHCHECK line serves every simulator, and asks ``/_admin/health``. Healthy
means: HTTP 200, and the simulator answering is the one this container is meant to run. Standard library
only: it runs every few seconds and must start fast.
"""

from __future__ import annotations

import json
import os
import ssl
import sys
import urllib.request

TRUE = {"1", "true", "yes", "on"}
MAX_ANSWER = 64 * 1024  # a health answer is a few dozen bytes; never read an unbounded one


def _context() -> ssl.SSLContext | None:
    if not TRUE & {os.environ.get("ESANTE_TLS", "").lower(), os.environ.get("ESANTE_MTLS", "").lower()}:
        return None
    ca = os.path.join(os.environ.get("ESANTE_PKI_DIR", "/data/pki"), "ca.crt.pem")
    return ssl.create_default_context(cafile=ca)


def main() -> int:
    expected = os.environ.get("ESANTE_SIMULATOR", "")
    context = _context()
    url = f"{'https' if context else 'http'}://127.0.0.1:{os.environ.get('ESANTE_PORT', '8001')}/_admin/health"
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as answer:
            status = json.loads(answer.read(MAX_ANSWER))
    except (OSError, ValueError) as exc:
        print(f"unhealthy: {url}: {exc}")
        return 1
    # a replay answers as the service it stands for ("simulator": "insi"), and says what it is ("kind": "replay")
    if status.get("status") != "ok" or (expected and expected not in (status.get("simulator"), status.get("kind"))):
        print(f"unhealthy: {url} answered {status}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
