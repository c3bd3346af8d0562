"""Reading the Procfiles, so ``webhooks dev`` runs exactly what a deployment runs.

One Procfile per mode: ``Procfile`` (kafka, the default), ``Procfile.http`` and
``Procfile.grpc``. Lines are ``name: [VAR=value ...] command args``.
"""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from shared.settings import Mode

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    env: dict[str, str]
    argv: list[str]


def procfile_path(mode: Mode, root: Path = PROJECT_ROOT) -> Path:
    return root / ("Procfile" if mode == "kafka" else f"Procfile.{mode}")


def parse_procfile(text: str) -> list[ProcessSpec]:
    specs = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, command = line.partition(":")
        words = shlex.split(command)
        env = {}
        while words and "=" in words[0] and not words[0].startswith("-"):
            key, _, value = words.pop(0).partition("=")
            env[key] = value
        if words and words[0] == "python":
            words[0] = sys.executable  # the interpreter that has this project installed
        specs.append(ProcessSpec(name.strip(), env, words))
    return specs


def load_procfile(mode: Mode, root: Path = PROJECT_ROOT) -> list[ProcessSpec]:
    return parse_procfile(procfile_path(mode, root).read_text())
