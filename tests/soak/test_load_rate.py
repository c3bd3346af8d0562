"""The soak's rate: half the probed peak of its own stack, or an override."""

from __future__ import annotations

from webhooks.soak.load_rate import choose_rate


def test_half_the_probed_peak_unless_overridden() -> None:
    rate = choose_rate(None, probed_accepted=14_000, probe_seconds=20)
    assert rate.per_second == 350 and "700/s" in rate.source
    assert choose_rate(200, probed_accepted=None).per_second == 200


def test_the_probed_rate_says_whose_peak_it_is() -> None:
    assert "of the kafka-mode system's peak of 700/s" in choose_rate(None, probed_accepted=14_000).source
    assert "of the http-mode system's peak of 700/s" in choose_rate(None, 14_000, mode="http").source
