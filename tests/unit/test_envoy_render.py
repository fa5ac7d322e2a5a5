"""Rendered Envoy configurations, checked by the real `envoy --mode validate`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from wirelab.envoy import (
    FAILURE_POLICIES,
    FilterSpec,
    ListenerSpec,
    render_bootstrap,
    render_user_config,
    tag_rules,
    validate_config,
)
from wirelab.errors import EnvoyError


@pytest.fixture
def wasm(envoy_probe_wasm: Path) -> Path:
    return envoy_probe_wasm


def _configs(wasm: Path) -> dict[str, list[ListenerSpec]]:
    f1 = FilterSpec("first", wasm, {"stat_prefix": "one"})
    f2 = FilterSpec("second", wasm, '{"stat_prefix": "two"}', root_id="r2", vm_id="vm2")
    return {
        "no_filter": [ListenerSpec("plain", ("127.0.0.1", 5432), port=15000)],
        "one_filter": [ListenerSpec("db", ("127.0.0.1", 5432), [f1], port=15001)],
        "two_filters_chained": [ListenerSpec("db", ("127.0.0.1", 5432), [f1, f2], port=15002)],
        "two_listeners": [
            ListenerSpec("pg", ("127.0.0.1", 5432), [f1], port=15003),
            ListenerSpec("my", ("localhost", 3306), [f2], port=15004),
        ],
    }


@pytest.mark.parametrize(
    "case", ["no_filter", "one_filter", "two_filters_chained", "two_listeners"]
)
def test_rendered_bootstrap_passes_envoy_validate(wasm: Path, case: str) -> None:
    yaml_text = render_bootstrap(_configs(wasm)[case], admin_port=19901)
    validate_config(yaml_text)
    assert "address: 127.0.0.1, port_value: 19901" in yaml_text


@pytest.mark.parametrize("policy", FAILURE_POLICIES)
def test_each_failure_policy_is_written_and_valid(wasm: Path, policy: str) -> None:
    spec = ListenerSpec("db", ("127.0.0.1", 5432), [FilterSpec("f", wasm, failure_policy=policy)])
    yaml_text = render_bootstrap([spec], admin_port=19901)
    validate_config(yaml_text)
    assert re.findall(r"failure_policy: (\w+)", yaml_text) == [policy]


def test_failure_policy_defaults_to_fail_open_and_accepts_lowercase(wasm: Path) -> None:
    assert FilterSpec("f", wasm).failure_policy == "FAIL_OPEN"
    assert FilterSpec("f", wasm, failure_policy="fail_closed").failure_policy == "FAIL_CLOSED"


def test_plugin_configuration_is_a_json_string_value(wasm: Path) -> None:
    config = {"stat_prefix": "app", "quote": 'a"b', "n": 3}
    yaml_text = render_bootstrap(
        [ListenerSpec("db", ("127.0.0.1", 1), [FilterSpec("f", wasm, config)])], 19901
    )
    line = next(ln for ln in yaml_text.splitlines() if ln.strip().startswith("value:"))
    assert json.loads(json.loads(line.split("value:", 1)[1])) == config
    assert "type.googleapis.com/google.protobuf.StringValue" in yaml_text


def test_invalid_config_raises_envoys_message(wasm: Path) -> None:
    good = render_bootstrap([ListenerSpec("db", ("127.0.0.1", 1), [FilterSpec("f", wasm)])], 1)
    with pytest.raises(EnvoyError, match=r"unknown enum value: 'FAIL_SOMETIMES'"):
        validate_config(good.replace("FAIL_OPEN", "FAIL_SOMETIMES"))
    with pytest.raises(EnvoyError, match=r"no such field: 'port_valu'"):
        validate_config(good.replace("port_value: 1}", "port_valu: 1}", 1))
    with pytest.raises(EnvoyError, match=r"Invalid path: /nonexistent/x\.wasm"):
        validate_config(good.replace(str(wasm.resolve()), "/nonexistent/x.wasm"))


def test_user_mistakes_are_one_line_errors(wasm: Path, tmp_path: Path) -> None:
    with pytest.raises(EnvoyError, match="failure_policy 'FAIL_SOFTLY' is unknown"):
        FilterSpec("f", wasm, failure_policy="FAIL_SOFTLY")
    with pytest.raises(EnvoyError, match="two filters named 'f'"):
        ListenerSpec("db", ("127.0.0.1", 1), [FilterSpec("f", wasm), FilterSpec("f", wasm)])
    with pytest.raises(EnvoyError, match="listener name 'has space'"):
        ListenerSpec("has space", ("127.0.0.1", 1))
    with pytest.raises(EnvoyError, match=r"does not exist \(run `wirelab build` first\)"):
        render_bootstrap(
            [ListenerSpec("db", ("127.0.0.1", 1), [FilterSpec("f", tmp_path / "no.wasm")])], 1
        )
    with pytest.raises(EnvoyError, match="two listeners are named 'db'"):
        render_bootstrap(
            [ListenerSpec("db", ("127.0.0.1", 1)), ListenerSpec("db", ("127.0.0.1", 2))], 1
        )


def test_user_config_is_valid_envoy_configuration(wasm: Path) -> None:
    spec = ListenerSpec("pg", ("127.0.0.1", 5432), [FilterSpec("pgm", wasm)], port=6432)
    text = render_user_config([spec], extra_tag_keys=("shard",))
    # The snippet has no admin section, and Envoy accepts a bootstrap without one.
    validate_config(text)
    assert 'socket_address: {address: "0.0.0.0", port_value: 6432}' in text
    assert r'regex: "^wasmcustom\\..*?(\\.shard=([^.]+))"' in text


def test_user_config_needs_a_port(wasm: Path) -> None:
    with pytest.raises(EnvoyError, match="listener 'pg' has no port"):
        render_user_config([ListenerSpec("pg", ("127.0.0.1", 5432))])


def _extract(name: str) -> tuple[str, dict[str, str]]:
    """What Envoy's stats_tags do, with Python's re (same syntax subset as RE2)."""
    remove: list[tuple[int, int]] = []
    tags = {}
    for rule in tag_rules():
        m = re.search(rule["regex"], name)
        if m:
            tags[rule["tag_name"]] = m.group(2)
            remove.append(m.span(1))
    for start, end in sorted(remove, reverse=True):
        name = name[:start] + name[end:]
    return name, tags


def test_tag_rules_split_the_naming_convention() -> None:
    assert _extract("wasmcustom.postgres.app.statements.type=select") == (
        "wasmcustom.postgres.statements",
        {"stat_prefix": "app", "type": "select"},
    )
    assert _extract("wasmcustom.mysql.db1.errors.code=1064.class=syntax") == (
        "wasmcustom.mysql.errors",
        {"stat_prefix": "db1", "code": "1064", "class": "syntax"},
    )
    # Envoy's own stats are not Wasm metrics: untouched.
    assert _extract("tcp.db.downstream_cx_total") == ("tcp.db.downstream_cx_total", {})


def test_a_native_filter_brings_the_runtime_guard_that_strips_its_namespace(wasm: Path) -> None:
    so = wasm.with_name("libprobe.so")  # the snippet names the file; it need not exist here
    native = ListenerSpec("pg", ("127.0.0.1", 5432),
                          [FilterSpec("pgm", so, target="native")], port=6432)
    plain = ListenerSpec("pg", ("127.0.0.1", 5432), [FilterSpec("pgm", wasm)], port=6432)
    guard = "envoy.reloadable_features.dynamic_modules_strip_custom_stat_prefix: true"
    assert guard in render_user_config([native])
    from wirelab.envoy.render import render_user_bootstrap

    assert guard in render_user_bootstrap([native])  # `wirelab config --target native --bootstrap`
    assert "layered_runtime" not in render_user_config([plain])
    assert "layered_runtime" not in render_bootstrap([plain], admin_port=19901)
