"""`wirelab xds export`: the files it writes, how it publishes, and what it refuses.

Real builds (the Lua runtime and a C example), the real emulator for the
configure check, and `envoy --mode validate` where the test says so; no Envoy
serves traffic here (tests/e2e/test_fleet_xds.py does that).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from wirelab.errors import WirelabError
from wirelab.paths import examples_dir
from wirelab.xds import FilterEntry, export, load_fleet, published_manifest, simple_fleet
from wirelab.xds.bootstrap import render_xds_bootstrap
from wirelab.xds.resources import NATIVE_TYPE, WASM_TYPE
from wirelab.xds.watch import Watcher

LUA = examples_dir() / "lua" / "tcp-bytes"
C = examples_dir() / "bytes-counter"


@pytest.fixture()
def projects(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for key, src in (("lua", LUA), ("c", C)):
        out[key] = tmp_path / src.name
        shutil.copytree(src, out[key], ignore=shutil.ignore_patterns("build"))
    return out


def read(root: Path, name: str) -> dict:
    return json.loads((root / name).read_text())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_export_writes_lds_cds_and_one_ecds_resource_per_filter(projects, tmp_path) -> None:
    out = tmp_path / "xds"
    spec = simple_fleet([projects["lua"], projects["c"]], "127.0.0.1:5432", listen=15432)
    result = export(spec, out, envoy_check=False)

    assert result.version == "0001"
    assert sorted(result.filters) == ["bytes-counter", "lua-tcp-bytes"]
    assert os.readlink(out / "current") == "versions/0001"
    for name in ("lds.json", "cds.json", "ecds-lua-tcp-bytes.json", "ecds-bytes-counter.json"):
        assert os.readlink(out / name) == f"current/{name}"

    lds = read(out, "lds.json")["resources"]
    assert [r["name"] for r in lds] == ["db"]
    chain = lds[0]["filter_chains"][0]["filters"]
    assert [f["name"] for f in chain] == ["lua-tcp-bytes", "bytes-counter",
                                         "envoy.filters.network.tcp_proxy"]
    discovery = chain[0]["config_discovery"]
    assert discovery["type_urls"] == [WASM_TYPE, NATIVE_TYPE]
    assert discovery["config_source"]["path_config_source"] == {
        "path": str(out / "ecds-lua-tcp-bytes.json"), "watched_directory": {"path": str(out)}}
    assert lds[0]["address"]["socket_address"] == {"address": "127.0.0.1", "port_value": 15432}
    cds = read(out, "cds.json")["resources"]
    assert cds[0]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"] == {
        "address": {"socket_address": {"address": "127.0.0.1", "port_value": 5432}}}

    # The code is referenced by content: blobs/<sha256>.wasm holds exactly the built module.
    wasm = projects["c"] / "build" / "bytes-counter.wasm"
    ecds = read(out, "ecds-bytes-counter.json")
    assert ecds["version_info"] == result.filters["bytes-counter"]
    plugin = ecds["resources"][0]["typed_config"]["config"]
    blob = out / "blobs" / f"{sha256(wasm)}.wasm"
    assert plugin["vm_config"]["code"] == {"local": {"filename": str(blob)}}
    assert blob.read_bytes() == wasm.read_bytes()
    assert json.loads(plugin["configuration"]["value"]) == {"stat_prefix": "bytes_counter"}
    manifest = published_manifest(out)
    assert manifest["filters"]["bytes-counter"]["sha256"] == sha256(wasm)


def test_remote_code_is_an_http_uri_and_sha256(projects, tmp_path) -> None:
    out = tmp_path / "xds"
    spec = simple_fleet([projects["c"]], "127.0.0.1:5432", code="remote",
                        blob_origin="http://blobs.example:8080")
    export(spec, out, envoy_check=False)
    digest = sha256(projects["c"] / "build" / "bytes-counter.wasm")
    code = read(out, "ecds-bytes-counter.json")["resources"][0]["typed_config"]["config"][
        "vm_config"]["code"]
    assert code["remote"]["sha256"] == digest
    assert code["remote"]["http_uri"]["uri"] == f"http://blobs.example:8080/blobs/{digest}.wasm"
    assert code["remote"]["http_uri"]["cluster"] == "wirelab_blobs"


def test_same_inputs_keep_each_filters_version_and_a_change_makes_one_new(projects,
                                                                          tmp_path) -> None:
    out = tmp_path / "xds"
    spec = simple_fleet([projects["lua"], projects["c"]], "127.0.0.1:5432")
    first = export(spec, out, envoy_check=False)
    again = export(spec, out, envoy_check=False)
    assert again.version == "0002"
    assert again.filters == first.filters
    assert again.changed == []
    with open(projects["lua"] / "filter.lua", "a") as fh:
        fh.write('\nwirelab.counter("one_more")\n')
    third = export(spec, out, envoy_check=False)
    assert third.changed == ["lua-tcp-bytes"]
    assert third.filters["bytes-counter"] == first.filters["bytes-counter"]
    assert os.readlink(out / "current") == "versions/0003"


def test_a_lua_syntax_error_is_refused_and_the_published_version_stays(projects,
                                                                        tmp_path) -> None:
    out = tmp_path / "xds"
    spec = simple_fleet([projects["lua"]], "127.0.0.1:5432")
    export(spec, out, envoy_check=False)
    published = (out / "current").resolve()
    with open(projects["lua"] / "filter.lua", "a") as fh:
        fh.write("\nlocal broken = = 1\n")
    with pytest.raises(WirelabError) as err:
        export(spec, out, envoy_check=False)
    assert str(err.value).count("\n") == 0
    assert "stays at version 0001" in str(err.value)
    assert "unexpected symbol near '='" in str(err.value)
    assert (out / "current").resolve() == published
    assert sorted(p.name for p in (out / "versions").iterdir()) == ["0001"]


def test_a_configuration_the_filter_refuses_is_refused_in_the_emulator(projects,
                                                                       tmp_path) -> None:
    from wirelab.build import build_project
    from wirelab.project import Project

    wasm = build_project(Project.load(projects["lua"])).wasm
    spec = simple_fleet([], "127.0.0.1:5432")
    spec.listeners[0].filters = [FilterEntry(wasm, config='{"protocol": "tcp"}', name="noscript")]
    with pytest.raises(WirelabError, match=r'does not configure: .*"script" \(the Lua source\) '
                                           r"is missing"):
        export(spec, tmp_path / "xds", envoy_check=False)
    assert not (tmp_path / "xds" / "current").exists()


def test_a_pinned_hash_that_does_not_match_is_refused(projects, tmp_path) -> None:
    from wirelab.build import build_project
    from wirelab.project import Project

    wasm = build_project(Project.load(projects["c"])).wasm
    fleet = tmp_path / "fleet.toml"
    fleet.write_text(f"""
[[listener]]
name = "pg"
port = 15432
upstream = "127.0.0.1:5432"
filters = [{{path = "{wasm}", sha256 = "{'ab' * 32}"}}]
""")
    with pytest.raises(WirelabError, match=f"has sha256 {sha256(wasm)}, but the fleet file pins "
                                           f"{'ab' * 32}"):
        export(load_fleet(fleet), tmp_path / "xds", envoy_check=False)


def test_a_corrupt_blob_in_the_store_is_refused(projects, tmp_path) -> None:
    out = tmp_path / "xds"
    spec = simple_fleet([projects["c"]], "127.0.0.1:5432")
    export(spec, out, envoy_check=False)
    blob = next((out / "blobs").iterdir())
    blob.write_bytes(blob.read_bytes() + b"\0")
    with pytest.raises(WirelabError, match="does not match its hash"):
        export(spec, out, envoy_check=False)


def test_envoy_validates_the_export_and_the_bootstrap(projects, tmp_path) -> None:
    from wirelab.envoy import validate_config

    out = tmp_path / "xds"
    spec = simple_fleet([projects["lua"], projects["c"]], "127.0.0.1:5432")
    export(spec, out)  # with `envoy --mode validate`
    text = render_xds_bootstrap(out, 9901, node_id="host-1")
    assert f'path: "{out}/lds.json"' in text
    validate_config(text)


def test_fleet_file_mistakes_are_one_line(tmp_path: Path) -> None:
    fleet = tmp_path / "fleet.toml"
    fleet.write_text('[[listener]]\nname = "pg"\nport = 1\n')
    with pytest.raises(WirelabError, match="listener 1: missing upstream"):
        load_fleet(fleet)
    fleet.write_text('[[listener]]\nname = "pg"\nport = 1\nupstream = "nohost"\n')
    with pytest.raises(WirelabError, match="is not HOST:PORT"):
        load_fleet(fleet)
    fleet.write_text('code = "remote"\n[[listener]]\nname = "pg"\nport = 1\n'
                     'upstream = "127.0.0.1:5432"\n')
    with pytest.raises(WirelabError, match="needs blob_origin"):
        load_fleet(fleet)
    fleet.write_text('[[listener]]\nname = "../pg"\nport = 1\nupstream = "127.0.0.1:5432"\n')
    with pytest.raises(WirelabError, match="listener name '../pg' is not allowed"):
        load_fleet(fleet)


def test_cli_export_then_bootstrap(projects, tmp_path) -> None:
    out = tmp_path / "xds"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "toolchain")}
    proc = subprocess.run(
        [sys.executable, "-m", "wirelab", "xds", "export", str(projects["c"]),
         "--upstream", "127.0.0.1:5432", "--listen", "15432", "--out", str(out), "--json"],
        capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["version"] == "0001"
    boot = subprocess.run([sys.executable, "-m", "wirelab", "xds", "bootstrap", str(out),
                           "--admin-port", "19999"], capture_output=True, text=True,
                          timeout=60, env=env)
    assert boot.returncode == 0, boot.stderr
    assert "port_value: 19999" in boot.stdout
    empty = subprocess.run([sys.executable, "-m", "wirelab", "xds", "bootstrap",
                            str(tmp_path / "nothing")], capture_output=True, text=True,
                           timeout=60, env=env)
    assert empty.returncode == 1
    assert empty.stderr.startswith("wirelab: error: ") and empty.stderr.count("\n") == 1


def test_watcher_publishes_on_save_and_reports_a_refusal(projects) -> None:
    calls: list[int] = []

    def publish() -> tuple[str, list[str]]:
        calls.append(1)
        if len(calls) == 2:
            raise WirelabError("filter.lua:3: broken")
        return f"{len(calls):04d}", ["lua-tcp-bytes"]

    seen = []
    watcher = Watcher([projects["lua"]], publish, seen.append)
    assert watcher.poll() is None
    script = projects["lua"] / "filter.lua"
    script.write_text(script.read_text() + "\n-- edit 1\n")
    first = watcher.poll()
    assert first is not None and first.version == "0001" and first.error is None
    assert first.files == [str(script)]
    script.write_text(script.read_text() + "-- edit 2\n")
    second = watcher.poll()
    assert second is not None and second.error == "filter.lua:3: broken"
    assert watcher.poll() is None
    assert seen == [first, second]


def test_istio_wasmplugins_follow_istios_published_schema(projects, tmp_path) -> None:
    from wirelab.xds.istio import export_istio

    models = pytest.importorskip(
        "cloudcoil.models.istio.extensions.v1alpha1",
        reason="Istio's schema as models is absent (pip install cloudcoil-models-istio)")
    spec = simple_fleet([projects["lua"], projects["c"]], "127.0.0.1:5432")
    written = export_istio(spec, tmp_path / "istio", "http://blobs.example:8080",
                           namespace="db", selector={"app": "pg-proxy"})
    docs = [json.loads(d) for d in written[0].read_text().split("---\n") if d.strip()]
    plugins = [models.WasmPlugin.model_validate(d) for d in docs]
    assert [(p.metadata.name, p.spec.type, p.spec.priority) for p in plugins] == [
        ("lua-tcp-bytes", "NETWORK", 1000), ("bytes-counter", "NETWORK", 990)]
    for p in plugins:
        blob = tmp_path / "istio" / "blobs" / f"{p.spec.sha256}.wasm"
        assert sha256(blob) == p.spec.sha256
        assert p.spec.url == f"http://blobs.example:8080/blobs/{p.spec.sha256}.wasm"
        assert p.spec.selector.match_labels == {"app": "pg-proxy"}
    assert plugins[1].spec.plugin_config == {"stat_prefix": "bytes_counter"}
