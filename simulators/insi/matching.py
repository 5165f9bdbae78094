"""How the simulated INSi finds identities, documented where the public material is silent.

Traits search (RECSANSVITALE) — our model of the service:
* birth name, first names: compared after :func:`normalise_name` (case and accents folded, as the service
  tolerates them; hyphens and apostrophes are significant);
* the first names sent (one ``Prenom``, or several) match when they equal one of the person's civil-status
  first names, or the whole list in order. That is why clients try first names one at a time and then the
  whole list: a local record whose list differs from the reference list still finds the person by one name;
* sex and birth date must be equal; a "lunar" date (``00`` for an unknown day or month) is compared as text;
* the birth place (COG code) is compared only when sent;
* one match → ``00`` with the identity; none → ``01``; several → ``02`` and no identity.
A deceased person is still returned (the teleservice has no death indicator in RESULTAT).

What is returned: the INS with its domain's OID (:func:`~esante.simulators.insi.protocol.answered_oid`: INS-NIR
``…4.8``, or INS-NIA ``…4.9``, as every real answer), whatever test OID the data set keeps for the other services.

Carte Vitale search (RECVITALE): the NIR on the card (the insured person's, a parent's for a child), the
beneficiary's birth date and birth rank must designate exactly one person.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from esante.simulators.dataset import Dataset, InsRecord, Patient
from esante.simulators.dataset.identifiers import normalise_name
from esante.simulators.insi.answers import Individual
from esante.simulators.insi.messages import Traits, VitaleQuery
from esante.simulators.insi.protocol import answered_oid

__all__ = ["PatientIndex", "individual"]


@dataclass(frozen=True, slots=True)
class _Entry:
    patient: Patient
    first_names: tuple[str, ...]  # normalised, in civil-status order


class PatientIndex:
    """The data set indexed for searching, built once per data set (normalising names is the costly part)."""

    def __init__(self, dataset: Dataset) -> None:
        self.by_birth_name: dict[str, list[_Entry]] = defaultdict(list)
        self.by_vitale: dict[str, list[Patient]] = defaultdict(list)
        for p in dataset.patients:
            entry = _Entry(p, tuple(normalise_name(n) for n in p.first_names))
            self.by_birth_name[normalise_name(p.birth_name)].append(entry)
            if p.vitale is not None:
                self.by_vitale[p.vitale.holder_nir].append(p)

    def find_by_traits(self, traits: Traits) -> list[Patient]:
        wanted = normalise_name(" ".join(traits.first_names))
        return [e.patient for e in self.by_birth_name.get(normalise_name(traits.birth_name), [])
                if e.patient.sex == traits.sex and e.patient.birth_date == traits.birth_date
                and (traits.birth_place is None or e.patient.birth_place == traits.birth_place)
                and (wanted == " ".join(e.first_names) or wanted in e.first_names)]

    def find_by_vitale(self, query: VitaleQuery) -> list[Patient]:
        return [p for p in self.by_vitale.get(query.nir, [])
                if p.birth_date == query.birth_date and p.vitale is not None and p.vitale.rank == query.rank]


def _answered(ins: InsRecord) -> InsRecord:
    return ins.model_copy(update={"oid": answered_oid(ins.oid)})


def individual(patient: Patient) -> Individual:
    """The identity as the reference (RNIPP-like) holds it: upper case, no accents, INS in their domain's OID."""
    return Individual(active=_answered(patient.ins), history=[_answered(old) for old in patient.ins_history],
                      birth_name=normalise_name(patient.birth_name),
                      first_names=[normalise_name(n) for n in patient.first_names], sex=patient.sex,
                      birth_date=patient.birth_date, birth_place=patient.birth_place)
