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

Carte Vitale search (RECVITALE): the NIR on the card (the insured person's, a parent's for a child), the
beneficiary's birth date and birth rank must designate exactly one person.
"""

from __future__ import annotations

from simulators.dataset import Dataset, Patient
from simulators.dataset.identifiers import normalise_name
from simulators.insi.messages import Individual, Traits, VitaleQuery


def _first_names_match(sent: list[str], patient: Patient) -> bool:
    wanted = normalise_name(" ".join(sent))
    names = [normalise_name(n) for n in patient.first_names]
    return wanted == " ".join(names) or wanted in names


def find_by_traits(dataset: Dataset, traits: Traits) -> list[Patient]:
    birth_name = normalise_name(traits.birth_name)
    return [p for p in dataset.patients
            if normalise_name(p.birth_name) == birth_name and p.sex == traits.sex
            and p.birth_date == traits.birth_date
            and (traits.birth_place is None or p.birth_place == traits.birth_place)
            and _first_names_match(traits.first_names, p)]


def find_by_vitale(dataset: Dataset, query: VitaleQuery) -> list[Patient]:
    return [p for p in dataset.patients
            if p.vitale is not None and p.vitale.holder_nir == query.nir
            and p.birth_date == query.birth_date and p.vitale.rank == query.rank]


def individual(patient: Patient) -> Individual:
    """The identity as the reference (RNIPP-like) holds it: upper case, no accents."""
    return Individual(active=patient.ins, history=list(patient.ins_history),
                      birth_name=normalise_name(patient.birth_name),
                      first_names=[normalise_name(n) for n in patient.first_names], sex=patient.sex,
                      birth_date=patient.birth_date, birth_place=patient.birth_place)
