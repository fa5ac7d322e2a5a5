"""The state file of a detached lab: JSON, mode 0600 (it holds passwords)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ..errors import WirelabError


def write_state(path: Path, state: dict[str, Any]) -> None:
    """Write atomically so a reader never sees half a file, and never world-readable."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(state, fh, indent=2)
        fh.write("\n")
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def read_state(path: Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise WirelabError(
            f"state file {path} does not exist: start a lab with `wirelab up --state {path}`"
        )
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise WirelabError(f"state file {path} is not valid JSON ({exc}): remove it") from None
