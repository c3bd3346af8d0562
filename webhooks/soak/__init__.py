"""``webhooks soak``: one mode's system (kafka by default, or http) under a steady load for minutes, its memory
and latency sampled."""

from __future__ import annotations

from typing import Literal

SoakMode = Literal["kafka", "http"]  # grpc is left out: http mode answers the same question without a broker
SOAK_MODES: tuple[SoakMode, ...] = ("kafka", "http")
