"""The reference candidate's INSi part: the driver's ``insi.*`` actions on :class:`IdentityFile`.

On ``/reset`` it points its INSi client at ``endpoints["insi"]`` and, for an HTTPS endpoint, authenticates
with an ``INSI-AUTO`` organisation certificate that it issues itself, once, from the run's test CA.
"""

from __future__ import annotations

from typing import Any

from fastapi import HTTPException

from esante.harness.reference.insi.client import InsiClient
from esante.harness.reference.insi.identity import IdentityFile
from esante.harness.reference.insi.models import InsiReport, LookupTraitsParams, LookupVitaleParams, VerifyParams
from esante.harness.reference.parts import STRUCTURE_FINESS, ClientCertificate, Part, ReferenceContext, validated
from esante.simulators.insi.protocol import SERVICE_PATH

INSI_CERT_CN = "INSI-AUTO"


class InsiPart(Part):
    actions = ("insi.lookup_traits", "insi.lookup_vitale", "insi.verify")

    def __init__(self, context: ReferenceContext) -> None:
        super().__init__(context)
        self.candidate = IdentityFile(context.defects)

    def reset(self, endpoints: dict[str, str]) -> None:
        """Forget identities; (re)point the INSi client, keeping its connection when the URL is unchanged."""
        self.candidate.reset()
        base = endpoints.get("insi")
        endpoint = f"{base.rstrip('/')}{SERVICE_PATH}" if base else None
        current = self.candidate.client
        if current is not None and current.endpoint == endpoint:
            return
        if current is not None:
            current.close()
        self.candidate.client = self._client(endpoint) if endpoint else None

    def _client(self, endpoint: str) -> InsiClient:
        cert = self.certificate() if endpoint.startswith("https:") else None
        ctx = self.context
        return InsiClient(endpoint, ca_pem=cert.ca_pem if cert else None,
                          cert_file=cert.cert_path if cert else None, key_file=cert.key_path if cert else None,
                          idam=ctx.idam, software_name=ctx.name, software_version=ctx.version,
                          emitter=STRUCTURE_FINESS, defects=self.defects)

    def certificate(self) -> ClientCertificate:
        """The organisation certificate for mutual TLS (CN INSI-AUTO; the structure's FINESS under a defect)."""
        common_name = STRUCTURE_FINESS if self.defects.on("wrong_certificate") else INSI_CERT_CN
        return self.context.certificate(common_name)

    def close(self) -> None:
        if self.candidate.client is not None:
            self.candidate.client.close()
            self.candidate.client = None

    def act(self, action: str, params: dict[str, Any], own_url: str) -> InsiReport:
        c = self.candidate
        if action == "insi.lookup_traits":
            p = validated(LookupTraitsParams, params)
            return c.lookup_traits(p.traits, p.id_document_checked)
        if action == "insi.lookup_vitale":
            v = validated(LookupVitaleParams, params)
            return c.lookup_vitale(v.card, v.id_document_checked)
        identity = validated(VerifyParams, params).identity
        if identity.ins is None:
            raise HTTPException(422, "insi.verify needs an identity that holds an INS")
        return c.verify(identity)
