"""The envelope's event id: a UUIDv5, the same for a provider's retry of the same event."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from shared.envelope import NAMESPACE, SOURCE, event_id_for


@given(st.text(min_size=1, max_size=200), st.sampled_from([SOURCE, "other-provider"]))
def test_event_id_is_the_uuid5_of_source_and_provider_event_id(provider_event_id: str, source: str) -> None:
    assert event_id_for(provider_event_id, source) == str(uuid.uuid5(NAMESPACE, f"{source}/{provider_event_id}"))


def test_event_id_is_stable_and_distinct() -> None:
    assert event_id_for("evt_1") == event_id_for("evt_1")
    assert event_id_for("evt_1") != event_id_for("evt_2")
    assert uuid.UUID(event_id_for("evt_1")).version == 5
