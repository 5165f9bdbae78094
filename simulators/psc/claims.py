"""What PSC says about a professional: the userinfo claim set, drawn from the shared test data set.

Claim names and shapes follow PSC's userinfo as public connectors read it (prosanteconnect/proof-of-concept
``UserInfos.java``): the national identifier is ``SubjectNameID`` ("8" + RPPS), never ``sub``; ``SubjectRefPro``
carries the professional's practices (exercices) and, in each, the activities with their structures.
"""

from __future__ import annotations

from typing import Any

from esante.simulators.dataset import Dataset
from esante.simulators.dataset.models import Professional, Structure
from esante.simulators.psc.protocol import (
    OID_PROFESSION,
    OID_SECTEUR_ACTIVITE,
    PALIER_AUTHENTIFICATION,
    PSI_LOCALE,
    subject_of,
)

#: TRE_R11 / TRE_G15 values we need: civility of practice for doctors, professional category "civil".
_CIVILITE_EXERCICE = {"10": "DR", "40": "DR", "21": "PR"}


def _activity(structure: Structure) -> dict[str, Any]:
    return {
        "codeModeExercice": "S" if structure.sector_code != "SA07" else "L",
        "codeSecteurDactivite": structure.sector_code,
        "codeSectionPharmacien": "",
        "codeRole": "",
        "codeGenreActivite": "GENR01",
        "numeroSiretSite": structure.siret or "",
        "numeroSirenSite": (structure.siret or "")[:9],
        "numeroFinessSite": structure.finess,
        "numeroFinessetablissementJuridique": structure.finess_legal or "",
        "identifiantTechniqueDeLaStructure": f"F{structure.finess}",
        "raisonSocialeSite": structure.name,
        "enseigneCommercialeSite": "",
        "libelleCommuneCoordStructure": structure.city,
        "autoriteDenregistrement": "ARS/ARS/ARS",
    }


def _exercice(professional: Professional, structures: list[Structure]) -> dict[str, Any]:
    return {
        "codeProfession": professional.profession_code,
        "codeCategorieProfessionnelle": "C",
        "codeCiviliteDexercice": _CIVILITE_EXERCICE.get(professional.profession_code, ""),
        "nomDexercice": professional.family_name,
        "prenomDexercice": professional.given_name,
        "codeTypeSavoirFaire": "S" if professional.specialty_code else "",
        "codeSavoirFaire": professional.specialty_code or "",
        "activities": [_activity(s) for s in structures],
    }


def userinfo_claims(dataset: Dataset, professional: Professional) -> dict[str, Any]:
    """PSC's userinfo answer for this professional (``sub`` included)."""
    structures = [dataset.structure(sid) for sid in professional.structure_ids]
    first = structures[0] if structures else None
    claims: dict[str, Any] = {
        "sub": subject_of(professional.national_id),
        "SubjectNameID": professional.national_id,
        "preferred_username": professional.national_id,
        "given_name": professional.given_name,
        "family_name": professional.family_name,
        "email_verified": False,
        "SubjectOrganization": first.name if first else "",
        "SubjectOrganizationID": first.finess if first else "",
        "SubjectRole": [f"{professional.profession_code}^{OID_PROFESSION}"],
        "SubjectRefPro": {"codeCivilite": "", "exercices": [_exercice(professional, structures)]},
        "Secteur_Activite": f"{first.sector_code}^{OID_SECTEUR_ACTIVITE}" if first else "",
        "Mode_Acces_Raison": "",
        "Acces_Regulation_Medicale": "FAUX",
        "UITVersion": "1.0",
        "Palier_Authentification": PALIER_AUTHENTIFICATION,
        "PSI_Locale": PSI_LOCALE,
        "otherIds": [{"identifiant": professional.rpps, "origine": "RPPS", "qualite": 1}],
    }
    if professional.email:
        claims["email"] = professional.email
    return claims
