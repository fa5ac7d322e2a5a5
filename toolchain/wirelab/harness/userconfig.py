"""`wirelab config`: Envoy YAML for a user's own Envoy, around one filter project."""

from __future__ import annotations

from pathlib import Path

from ..envoy import ListenerSpec, render_user_bootstrap, render_user_config
from ..errors import WirelabError
from .filters import resolve_filter

DEFAULTS = {"postgres": (15432, 5432), "mysql": (13306, 3306), "tcp": (10000, None)}


def parse_hostport(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise WirelabError(f"--upstream {text!r} is not HOST:PORT (for example 127.0.0.1:5432)")
    return host.strip("[]"), int(port)


def user_config(directory: Path, listen: int | None, upstream: str | None,
                failure_policy: str = "FAIL_OPEN", bootstrap: bool = False,
                admin_port: int = 9901, target: str = "wasm") -> str:
    """The pieces to merge into an Envoy configuration, or with `bootstrap` a complete
    one (admin API on 127.0.0.1:`admin_port`) that `envoy -c` runs as is."""
    resolved = resolve_filter(directory, failure_policy=failure_policy, build_target=target)
    default_listen, default_upstream = DEFAULTS[resolved.protocol]
    if upstream:
        up = parse_hostport(upstream)
    elif default_upstream:
        up = ("127.0.0.1", default_upstream)
    else:
        raise WirelabError("a tcp filter has no default server: pass --upstream HOST:PORT")
    listener = ListenerSpec(resolved.protocol, up, [resolved.spec], listen or default_listen)
    if bootstrap:
        return render_user_bootstrap([listener], admin_port)
    return render_user_config([listener])
