"""`wirelab build`: real compiles with Zig's clang, real validation with wasmtime."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import wasmtime
from click.testing import CliRunner

from wirelab.build import abi, build_project, validate
from wirelab.build.zig import parse_diagnostics
from wirelab.cli import main
from wirelab.errors import BuildError, WirelabError
from wirelab.paths import examples_dir
from wirelab.project import Project

WIRELAB = Path(sys.executable).with_name("wirelab")

EXPECTED_EXPORTS = {
    "memory",
    "_initialize",
    "malloc",
    "proxy_on_memory_allocate",
    "proxy_abi_version_0_2_1",
    *abi.NETWORK_CALLBACKS,
}


def make_project(root: Path, source: str, extra: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "wirelab.toml").write_text(f'name = "t"\nsources = ["filter.c"]\n{extra}')
    (root / "filter.c").write_text(source)
    return root


OK_SOURCE = '#include "wirelab_filter.h"\nint wl_on_vm_start(void) { return 1; }\n'


@pytest.fixture
def example(tmp_path) -> Path:
    dst = tmp_path / "bytes-counter"
    shutil.copytree(examples_dir() / "bytes-counter", dst, ignore=shutil.ignore_patterns("build"))
    return dst


def test_example_builds_a_valid_module(example):
    result = build_project(Project.load(example), force=True)
    assert result.wasm == example / "build" / "bytes-counter.wasm"
    assert result.cached is False
    assert result.bytes == result.wasm.stat().st_size > 0
    info = validate.inspect(result.wasm)
    assert EXPECTED_EXPORTS <= set(info.exports)
    assert validate.problems(info) == []
    assert ("env", "proxy_define_metric") in info.imports
    # Exports have the types Envoy calls them with.
    module = wasmtime.Module.from_file(wasmtime.Engine(), str(result.wasm))
    types = {e.name: e.type for e in module.exports}
    ddata = types["proxy_on_downstream_data"]
    assert [str(t) for t in ddata.params] == ["i32", "i32", "i32"]
    assert [str(t) for t in ddata.results] == ["i32"]


def test_second_build_is_cached_and_changes_rebuild(example):
    project = Project.load(example)
    first = build_project(project)
    again = build_project(project)
    assert again.cached is True and again.wasm == first.wasm and again.bytes == first.bytes

    src = example / "filter.c"
    src.write_text(src.read_text() + "\n/* touched */\n")
    assert build_project(project).cached is False
    assert build_project(project).cached is True

    assert build_project(project, force=True).cached is False

    (example / "wirelab.toml").write_text(
        (example / "wirelab.toml").read_text().replace(
            'sources = ["filter.c"]', 'sources = ["filter.c"]\ncflags = ["-DUNUSED=1"]'
        )
    )
    assert build_project(Project.load(example)).cached is False


def test_header_in_include_dir_is_an_input(tmp_path):
    root = make_project(
        tmp_path / "p",
        '#include "wirelab_filter.h"\n#include "cfg.h"\nint wl_on_vm_start(void) { return K; }\n',
        'include_dirs = ["inc"]\n',
    )
    (root / "inc" / "sub").mkdir(parents=True)
    (root / "inc" / "cfg.h").write_text('#include "sub/k.h"\n')
    (root / "inc" / "sub" / "k.h").write_text("#define K 1\n")
    project = Project.load(root)
    assert build_project(project).cached is False
    assert build_project(project).cached is True
    (root / "inc" / "sub" / "k.h").write_text("#define K 2\n")
    assert build_project(project).cached is False


def test_header_beside_the_sources_is_an_input(tmp_path):
    root = make_project(
        tmp_path / "p",
        '#include "wirelab_filter.h"\n#include "local.h"\nint wl_on_vm_start(void) { return K; }\n',
    )
    (root / "local.h").write_text("#define K 1\n")
    project = Project.load(root)
    assert build_project(project).cached is False
    assert build_project(project).cached is True
    (root / "local.h").write_text("#define K 2\n")
    assert build_project(project).cached is False


@pytest.mark.skipif(
    not WIRELAB.exists(), reason=f"no {WIRELAB}: install wirelab into this venv (`make venv`)"
)
def test_syntax_error_through_the_cli(tmp_path):
    root = make_project(
        tmp_path / "bad", '#include "wirelab_filter.h"\nint wl_on_vm_start(void) {\n  return 1\n}\n'
    )
    proc = subprocess.run(
        [str(WIRELAB), "build", str(root)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 1
    assert proc.stderr == "wirelab: error: filter.c:3: expected ';' after return statement\n"
    assert "Traceback" not in proc.stderr
    assert not (root / "build" / "t.wasm").exists()


def test_several_errors_are_each_one_line(tmp_path):
    root = make_project(
        tmp_path / "p",
        '#include "wirelab_filter.h"\n#include "missing.h"\n',
    )
    with pytest.raises(BuildError) as exc:
        build_project(Project.load(root))
    assert str(exc.value) == "filter.c:2: 'missing.h' file not found"


def test_undefined_function_names_the_source(tmp_path):
    root = make_project(
        tmp_path / "p",
        '#include "wirelab_filter.h"\nint helper(void);\n'
        "int wl_on_vm_start(void) { return helper(); }\n",
    )
    with pytest.raises(BuildError) as exc:
        build_project(Project.load(root))
    assert str(exc.value) == (
        "filter.c: undefined symbol: helper (define it, or link the source that does)"
    )


def test_forbidden_import_is_named_and_no_module_is_left(tmp_path):
    root = make_project(
        tmp_path / "p",
        '#include "wirelab_filter.h"\n'
        '__attribute__((import_module("env"), import_name("proxy_not_real"))) int not_real(int);\n'
        "int wl_on_vm_start(void) { return not_real(3); }\n",
    )
    result = CliRunner().invoke(main, ["build", str(root)])
    assert result.exit_code == 1
    assert result.output.startswith(
        "wirelab: error: build/t.wasm: import env.proxy_not_real is not provided by Envoy 1.40"
    )
    assert len(result.output.strip().splitlines()) == 1
    assert not (root / "build" / "t.wasm").exists()
    # Fixing the source builds (a failed build never poisons the cache).
    (root / "filter.c").write_text(OK_SOURCE)
    assert build_project(Project.load(root)).cached is False


def test_json_output_has_typed_keys(example):
    runner = CliRunner()
    for cached in (False, True):
        result = runner.invoke(main, ["build", str(example), "--json"])
        assert result.exit_code == 0, result.output
        data = json.loads(result.output)
        assert set(data) == {"ok", "wasm", "bytes", "cached", "seconds", "warnings"}
        assert data["ok"] is True and data["warnings"] == []
        assert data["wasm"] == str(example / "build" / "bytes-counter.wasm")
        assert isinstance(data["bytes"], int) and data["bytes"] > 0
        assert data["cached"] is cached
        assert isinstance(data["seconds"], float)


def test_missing_manifest_is_one_line(tmp_path):
    result = CliRunner().invoke(main, ["build", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output == (
        f"wirelab: error: {tmp_path} is not a wirelab project: wirelab.toml is missing "
        "(create one with `wirelab new NAME`, or pass the project directory)\n"
    )


@pytest.mark.parametrize(
    ("manifest", "fragment"),
    [
        ('name = "t"\nsources = ["filter.c"\n', "invalid TOML"),
        ('name = "t"\nsources = ["filter.c"]\nsorces = []\n', "sorces"),
        ('name = "T!"\nsources = ["filter.c"]\n', "must be lowercase"),
        ('name = "t"\nsources = ["other.c"]\n', "source 'other.c' does not exist"),
        ('name = "t"\nlanguage = "rust"\nsources = ["filter.c"]\n', "language"),
    ],
)
def test_bad_manifest_is_one_line(tmp_path, manifest, fragment):
    (tmp_path / "filter.c").write_text(OK_SOURCE)
    (tmp_path / "wirelab.toml").write_text(manifest)
    result = CliRunner().invoke(main, ["build", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.startswith("wirelab: error: ")
    assert fragment in result.output
    assert len(result.output.strip().splitlines()) == 1


WAT_COMPLETE = """(module
  (import "env" "proxy_log" (func (param i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))
  (import "wasi_unstable" "clock_time_get" (func (param i32 i64 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param i32) (result i32) i32.const 0))"""


def test_validation_accepts_the_envoy_import_set():
    assert validate.problems(validate.inspect(wasmtime.wat2wasm(WAT_COMPLETE))) == []


def test_validation_names_every_problem():
    wat = """(module
      (import "env" "proxy_not_real" (func))
      (import "wasi_snapshot_preview1" "sock_open" (func))
      (func (export "proxy_on_new_connection") (param i32) (result i32) i32.const 0))"""
    found = validate.problems(validate.inspect(wasmtime.wat2wasm(wat)))
    assert [p.split(" (")[0] for p in found] == [
        "missing export proxy_abi_version_0_2_1",
        "missing export memory",
        "missing export malloc or proxy_on_memory_allocate",
        "import env.proxy_not_real is not provided by Envoy 1.40",
        "import wasi_snapshot_preview1.sock_open is not provided by Envoy 1.40",
    ]
    with pytest.raises(BuildError):
        validate.validate(wasmtime.wat2wasm(wat))


def test_garbage_is_not_a_module():
    with pytest.raises(BuildError, match="not valid WebAssembly"):
        validate.inspect(b"\0asm\x02\0\0\0junk")


def test_allowed_import_set():
    assert abi.is_allowed_import("env", "proxy_get_buffer_bytes")
    assert abi.is_allowed_import("env", "proxy_get_log_level")
    assert abi.is_allowed_import("env", "emscripten_notify_memory_growth")
    assert abi.is_allowed_import("wasi_unstable", "random_get")
    assert not abi.is_allowed_import("env", "proxy_on_new_connection")
    assert not abi.is_allowed_import("wasi_snapshot_preview1", "proxy_log")
    assert len(abi.WASI_FUNCTIONS) == 45
    assert len(abi.PROXY_HOST_FUNCTIONS | abi.PROXY_HOST_FUNCTIONS_0_2_1) == 39


def test_diagnostic_paths(tmp_path):
    src = tmp_path / "filter.c"
    out = (
        f"{src}:7:3: error: use of undeclared identifier 'x'\n"
        f"{src}:9:1: warning: unused variable 'y'\n"
        "/usr/include/elsewhere.h:1:2: error: boom\n"
        "wasm-ld: error: /cache/o/abc/filter.o: undefined symbol: z\n"
    )
    assert [str(d) for d in parse_diagnostics(out, tmp_path, [src])] == [
        "filter.c:7: use of undeclared identifier 'x'",
        "/usr/include/elsewhere.h:1: boom",
        "filter.c: undefined symbol: z (define it, or link the source that does)",
    ]


def test_project_errors_are_wirelab_errors(tmp_path):
    # The CLI relies on this to print one line without a traceback.
    assert issubclass(BuildError, WirelabError)
    with pytest.raises(WirelabError):
        Project.load(tmp_path / "nothing-here")


def test_only_the_projects_protocol_decoder_is_compiled():
    from wirelab.build.c import library_sources
    from wirelab.paths import protocols_dir, sdk_dir

    tcp = library_sources("tcp")
    assert {p.name for p in tcp} >= {"wl_runtime.c", "wl_metrics.c", "wl_host.c", "wl_json.c"}
    assert all(p.parent in (sdk_dir(), sdk_dir() / "wasm") or p.name.startswith("wire")
               for p in tcp)
    pg = set(library_sources("postgres")) - set(tcp)
    assert pg == set(protocols_dir().glob("postgres*.c"))


def test_each_target_links_its_own_sdk_backend_and_the_shared_sdk_files():
    from wirelab.build.c import library_sources
    from wirelab.paths import sdk_dir

    wasm = {p.relative_to(sdk_dir()).as_posix() for p in library_sources("tcp", "wasm")}
    native = {p.relative_to(sdk_dir()).as_posix() for p in library_sources("tcp", "native")}
    shared = {"wl_hooks.c", "wl_json.c", "wl_metrics.c", "wl_properties.c"}
    assert wasm == shared | {"wasm/wl_runtime.c", "wasm/wl_host.c", "wasm/wl_wasm_metrics.c"}
    assert native == shared | {"native/wl_native_runtime.c", "native/wl_native_host.c",
                               "native/wl_native_metrics.c"}


def test_sdk_readme_example_builds_warning_free(tmp_path):
    from wirelab.paths import sdk_dir

    text = (sdk_dir() / "README.md").read_text()
    code = text.split("```c\n", 1)[1].split("```", 1)[0]
    root = make_project(tmp_path / "readme", code, 'cflags = ["-Wall", "-Wextra", "-Werror"]\n')
    info = validate.inspect(build_project(Project.load(root)).wasm)
    assert validate.problems(info) == []


def test_warnings_are_reported_not_fatal(tmp_path):
    root = make_project(
        tmp_path / "w",
        '#include "wirelab_filter.h"\n'
        "int wl_on_vm_start(void) {\n  int unused = 3;\n  return 1;\n}\n",
        'cflags = ["-Wall"]\n',
    )
    result = CliRunner().invoke(main, ["build", str(root), "--json"])
    assert result.exit_code == 0
    assert "wirelab: warning: filter.c:3: unused variable 'unused' [-Wunused-variable]" in (
        result.output
    )
    assert build_project(Project.load(root)).warnings == ()  # cached: nothing compiled
