"""The one policy function: roles, acting for another party, and foreign objects."""

from __future__ import annotations

import pytest

from gsomia.errors import InvalidInput, NotPermitted, UnknownEntity
from gsomia.services.exchange.access import Action, Principal, Role, allowed, authorize

JPN = Principal(id="p-1", name="JPN desk", role=Role.PARTY, party="JPN")
KOR = Principal(id="p-2", name="KOR desk", role=Role.PARTY, party="KOR")
OPERATOR = Principal(id="p-3", name="duty", role=Role.OPERATOR)
AUDITOR = Principal(id="p-4", name="inspector", role=Role.AUDITOR)


def test_a_party_acts_only_for_itself() -> None:
    authorize(JPN, Action.SUBMIT, acting_for="JPN")
    with pytest.raises(NotPermitted, match="only for its own party"):
        authorize(KOR, Action.SUBMIT, acting_for="JPN")


def test_another_partys_object_is_not_found_rather_than_forbidden() -> None:
    authorize(KOR, Action.READ_DELIVERY, owners=["KOR"], thing="delivery", thing_id="d-1")
    with pytest.raises(UnknownEntity, match="no delivery 'd-1'"):
        authorize(JPN, Action.READ_DELIVERY, owners=["KOR"], thing="delivery", thing_id="d-1")
    with pytest.raises(UnknownEntity):  # a missing object looks the same
        authorize(JPN, Action.READ_DELIVERY, owners=[], thing="delivery", thing_id="d-2")


@pytest.mark.parametrize("who", [OPERATOR, AUDITOR])
def test_operators_and_auditors_never_read_payloads_or_submit(who: Principal) -> None:
    for action in (Action.SUBMIT, Action.READ_DELIVERY, Action.READ_INBOX, Action.ANSWER_CONSENT, Action.ACK):
        with pytest.raises(NotPermitted):
            authorize(who, action)


def test_the_auditor_reads_the_ledger_and_statistics_only() -> None:
    assert allowed(Role.AUDITOR) == {Action.READ_LEDGER, Action.READ_STATS, Action.READ_KEYS}


def test_an_operator_may_register_any_partys_keys_but_a_party_only_its_own() -> None:
    authorize(OPERATOR, Action.REGISTER_KEYS, acting_for="KOR")
    with pytest.raises(NotPermitted):
        authorize(JPN, Action.REGISTER_KEYS, acting_for="KOR")
    with pytest.raises(NotPermitted):
        authorize(OPERATOR, Action.SUBMIT, acting_for="KOR")


def test_principals_are_well_formed() -> None:
    with pytest.raises(InvalidInput):
        Principal(id="p", name="x", role=Role.PARTY)
    with pytest.raises(InvalidInput):
        Principal(id="p", name="x", role=Role.AUDITOR, party="JPN")
    with pytest.raises(InvalidInput):
        Role.parse("admin")
