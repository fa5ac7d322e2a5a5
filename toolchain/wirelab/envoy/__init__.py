"""Render Envoy configurations from templates, validate them, run Envoy, read its stats."""

from .binary import envoy_path, envoy_version, startup_reason, validate_config
from .process import EnvoyProcess
from .render import (
    TAG_KEYS,
    render_bootstrap,
    render_user_bootstrap,
    render_user_config,
    tag_rules,
)
from .specs import FAILURE_POLICIES, FilterSpec, ListenerSpec
from .stats import Histogram, Sample, Snapshot, StatsClient, parse_prometheus

__all__ = [
    "FAILURE_POLICIES", "TAG_KEYS", "EnvoyProcess", "FilterSpec", "Histogram",
    "ListenerSpec", "Sample", "Snapshot", "StatsClient", "envoy_path", "envoy_version",
    "parse_prometheus", "render_bootstrap", "render_user_bootstrap", "render_user_config",
    "startup_reason",
    "tag_rules", "validate_config",
]
