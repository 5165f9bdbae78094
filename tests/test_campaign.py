"""The campaign format: the shipped campaign loads, bad files are reported by file, line and field, the
published JSON Schema is current, and the loader never fails in any other way (property tests)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from esante.harness.campaign import CampaignError, campaign_schema, load_campaign, resolve_campaign
from esante.harness.checks import load_checks
from esante.harness.kits import kits
from esante.harness.session import load

ROOT = Path(__file__).parent.parent
BAD = Path(__file__).parent / "vectors" / "campaigns"


def test_shipped_insi_campaign_is_valid() -> None:
    loaded = load_campaign(resolve_campaign("insi"), known_checks=load_checks())
    campaign = loaded.campaign
    assert len(campaign.cases) >= 12
    assert len(loaded.sha256) == 64
    cited = {r for case in campaign.cases for r in case.requirements}
    assert cited == set(campaign.requirements), "every declared requirement is judged by some case"


def test_bad_field_is_named_with_file_and_line() -> None:
    with pytest.raises(CampaignError) as error:
        load_campaign(BAD / "bad_severity.yaml")
    assert "bad_severity.yaml:21: cases[1].severity:" in str(error.value)


def test_unknown_check_is_named_with_file_and_line() -> None:
    with pytest.raises(CampaignError) as error:
        load_campaign(BAD / "unknown_check.yaml", known_checks=load_checks())
    assert "unknown_check.yaml:18: cases[0].expect[1].check: unknown check 'insi.does_not_exist'" in str(error.value)


@pytest.mark.parametrize("name", sorted(kits()))
def test_shipped_campaigns_play_as_written(name: str) -> None:
    """Every step of every shipped campaign builds its parameters from the data set, with a known action."""
    assert load(name).campaign.cases


def test_every_problem_a_run_would_trip_on_is_named_in_one_pass() -> None:
    with pytest.raises(CampaignError) as error:
        load(str(BAD / "many_problems.yaml"))
    found = str(error.value).splitlines()
    expected = [
        ":6: campaign.simulators[1]: unknown simulator 'nosuch'",
        ":14: cases[0].steps[0].action: unknown driver action 'insi.lookup_trait' (did you mean "
        "'insi.lookup_traits'?)",
        ":22: cases[1].steps[0]: insi.lookup_traits: no patient with id 'P999' in data set 'default'",
        ":28: cases[2].requirements[0]: requirement 'INSI-NOPE-01' is not declared",
        ":34: cases[2].expect[0].check: unknown check 'insi.does_not_exist'",
        ":35: cases[2].expect[1].check: check 'insi.security_context' judges requirement(s) the campaign does "
        "not declare: INSI-SEC-01",
        ":38: cases[3].severity: Input should be",
    ]
    assert len(found) == len(expected), found
    for line, wanted in zip(found, expected, strict=True):
        assert line.startswith(str(BAD / "many_problems.yaml")) and wanted in line, line


def test_duplicate_case_ids_are_named_at_the_second(tmp_path: Path) -> None:
    data = yaml.safe_load(resolve_campaign("insi").read_text())
    data["cases"][3]["id"] = data["cases"][1]["id"]
    path = tmp_path / "twice.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False))
    with pytest.raises(CampaignError, match=r"twice.yaml:\d+: cases\[3\]\.id: duplicate test case id 'INSI-02'"):
        load_campaign(path)


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    bad = tmp_path / "broken.yaml"
    bad.write_text("campaign:\n  id: [unclosed\n")
    with pytest.raises(CampaignError, match=r"broken.yaml:\d+: not valid YAML"):
        load_campaign(bad)


def test_shipped_schema_is_current() -> None:
    shipped = json.loads((ROOT / "scenarios" / "campaign.schema.json").read_text())
    assert shipped == campaign_schema(), "regenerate: esante schema campaign --write scenarios/campaign.schema.json"


def test_shipped_campaign_validates_against_the_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    data = yaml.safe_load(resolve_campaign("insi").read_text())
    jsonschema.validate(data, campaign_schema())


# -- property tests ----------------------------------------------------------------------------------------
#: They judge what the loader does, not how fast: a loaded CI machine must not fail them on time.
UNTIMED = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
ids = st.from_regex(r"[A-Z][A-Z0-9-]{0,8}", fullmatch=True)
text = st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), min_size=1, max_size=30)


@st.composite
def campaigns(draw: st.DrawFn) -> dict:
    requirements = draw(st.dictionaries(ids, text, min_size=1, max_size=4))
    case_ids = draw(st.lists(ids, min_size=1, max_size=4, unique=True))
    cases = [{"id": cid, "title": draw(text), "requirements": draw(st.lists(st.sampled_from(sorted(requirements)),
                                                                            min_size=1, max_size=3)),
              "severity": draw(st.sampled_from(["blocking", "major", "minor"])),
              "steps": [{"action": "insi.lookup_traits", "patient": "P001"}],
              "expect": [{"check": "insi.soap12_envelope"}]} for cid in case_ids]
    return {"campaign": {"id": draw(ids), "version": "1.0", "title": draw(text), "simulators": ["insi"]},
            "requirements": requirements, "cases": cases}


@settings(max_examples=60, deadline=None, suppress_health_check=UNTIMED)
@given(data=campaigns())
def test_valid_campaigns_round_trip(tmp_path: Path, data: dict) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    loaded = load_campaign(path)
    assert [c.id for c in loaded.campaign.cases] == [c["id"] for c in data["cases"]]
    assert loaded.campaign.requirements == data["requirements"]


@settings(max_examples=120, deadline=None, suppress_health_check=UNTIMED)
@given(data=campaigns(), path_choice=st.integers(0, 1000), junk=st.one_of(st.none(), st.integers(), text,
                                                                          st.lists(st.integers(), max_size=2)))
def test_corrupted_campaigns_fail_only_with_campaign_error(tmp_path: Path, data: dict, path_choice: int,
                                                           junk: object) -> None:
    """Replacing any one value with junk gives either a valid campaign or a CampaignError naming a line."""
    targets = []

    def walk(node: object, parent: object, key: object) -> None:
        targets.append((parent, key))
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, node, k)
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, node, i)

    walk(data, None, None)
    parent, key = targets[path_choice % len(targets)]
    if parent is not None:
        parent[key] = junk  # type: ignore[index]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    try:
        load_campaign(path)
    except CampaignError as exc:
        assert str(exc).startswith(str(path) + ":")


def test_yaml_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    lines += ["campaign: *a8"]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    with pytest.raises(CampaignError, match="aliases"):
        load_campaign(bomb)


def test_deeply_nested_yaml_is_refused(tmp_path: Path) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text("campaign: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(CampaignError, match="nested too deeply"):
        load_campaign(deep)


@settings(max_examples=80, deadline=None, suppress_health_check=UNTIMED)
@given(case=st.integers(0, 16), field=st.sampled_from(["patient", "professional", "with", "action", "instruction"]),
       junk=st.one_of(st.none(), st.integers(), text, st.lists(text, max_size=2),
                      st.dictionaries(st.sampled_from(["traits", "ins", "status", "card", "structure"]),
                                      st.one_of(st.integers(), text, st.lists(st.integers(), max_size=2)),
                                      max_size=2)))
def test_what_a_step_names_is_checked_without_ever_failing_otherwise(tmp_path: Path, case: int, field: str,
                                                                     junk: object) -> None:
    """Junk where a step names its patient, parameters or instruction: a valid campaign or a CampaignError."""
    data = yaml.safe_load(resolve_campaign("insi").read_text(encoding="utf-8"))
    data["cases"][case]["steps"][0][field] = junk
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True))
    try:
        load(str(path))
    except CampaignError as exc:
        assert str(exc).startswith(str(path) + ":")
