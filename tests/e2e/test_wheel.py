"""wirelab from a regular (non-editable) wheel install, used from another directory.

The wheel must carry everything `wirelab build` and the Envoy runner read from
disk: the C SDK, the protocol decoders, the shipped filters, the examples and the
Envoy templates. The fresh venv borrows this venv's third-party packages through
a .pth line (so the test needs no downloads) but gets wirelab only from the wheel.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("hatchling", reason="hatchling builds the wheel: pip install hatchling")
    dist = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist),
         str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    wheel = next(dist.glob("wirelab-*.whl"))
    venv = tmp_path_factory.mktemp("venv") / "fresh"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    fresh_site = Path(
        subprocess.run([str(venv / "bin" / "python"), "-c",
                        "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                       check=True, capture_output=True, text=True).stdout.strip()
    )
    (fresh_site / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps",
                    str(wheel)], check=True, timeout=300)
    return venv


def _run(venv: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv / "bin" / "wirelab"), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def _copy_installed_example(venv: Path, tmp_path: Path) -> Path:
    """The bytes-counter example as the wheel installed it, copied to tmp_path/counter."""
    examples = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import wirelab.paths as p; print(p.examples_dir())"],
        capture_output=True, text=True, check=True).stdout.strip()
    project = tmp_path / "counter"
    shutil.copytree(Path(examples) / "bytes-counter", project,
                    ignore=shutil.ignore_patterns("build"))
    return project


def test_wheel_carries_sdk_decoders_filters_and_templates(wheel_venv: Path, tmp_path: Path):
    code = ("import wirelab, wirelab.paths as p; print(wirelab.__file__); "
            "print(p.sdk_dir()); print(p.envoy_templates_dir()); print(p.examples_dir())")
    out = subprocess.run([str(wheel_venv / "bin" / "python"), "-c", code], cwd=tmp_path,
                         capture_output=True, text=True, check=True).stdout.split()
    module, sdk, templates, examples = map(Path, out)
    assert str(module).startswith(str(wheel_venv)), "wirelab must come from the wheel"
    for path in (sdk, templates, examples):
        assert str(path).startswith(str(wheel_venv)), path
    assert (sdk / "wirelab_filter.h").is_file()
    assert (templates / "bootstrap.yaml.j2").is_file()
    assert (examples / "bytes-counter" / "wirelab.toml").is_file()
    assert (sdk.parent / "protocols" / "wire.h").is_file()


def test_build_and_replay_from_another_directory(wheel_venv: Path, tmp_path: Path):
    project = _copy_installed_example(wheel_venv, tmp_path)
    built = _run(wheel_venv, tmp_path, "build", str(project), "--json")
    assert built.returncode == 0, built.stderr
    info = json.loads(built.stdout)
    assert Path(info["wasm"]).parent == project / "build"
    assert info["bytes"] > 0

    conv = tmp_path / "talk.wlc"
    conv.write_text("\n".join(json.dumps(line) for line in [
        {"format": "wirelab-conversation", "version": 1, "protocol": "tcp", "meta": {}},
        {"t": 0.0, "conn": 0, "ev": "open", "src": "10.0.0.1:5000", "dst": "10.0.0.2:5432"},
        {"t": 0.001, "conn": 0, "dir": "client", "data": "aGVsbG8="},
        {"t": 0.002, "conn": 0, "dir": "server", "data": "d29ybGQh"},
        {"t": 0.003, "conn": 0, "ev": "close", "by": "client"},
    ]) + "\n")
    replayed = _run(wheel_venv, tmp_path, "replay", str(project), str(conv), "--json")
    assert replayed.returncode == 0, replayed.stderr
    counters = json.loads(replayed.stdout)["counters"]
    assert counters["tcp.bytes_counter.connections_total"] == 1
    assert counters["tcp.bytes_counter.bytes_total.direction=client"] == 5
    assert counters["tcp.bytes_counter.bytes_total.direction=server"] == 6


def test_config_and_doctor_from_the_wheel(wheel_venv: Path, tmp_path: Path):
    doctor = _run(wheel_venv, tmp_path, "doctor", "--json")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    names = {c["name"] for c in json.loads(doctor.stdout)}
    assert "Envoy" in names and any("wasmtime" in n for n in names), names
    project = _copy_installed_example(wheel_venv, tmp_path)
    config = _run(wheel_venv, tmp_path, "config", str(project), "--upstream", "127.0.0.1:5432")
    assert config.returncode == 0, config.stderr
    from wirelab.envoy import validate_config

    admin = "admin:\n  address:\n    socket_address: {address: 127.0.0.1, port_value: 0}\n"
    validate_config(admin + config.stdout)


@pytest.mark.parametrize("lang", ["c", "lua"])
def test_new_build_and_test_from_the_wheel(wheel_venv: Path, tmp_path: Path, lang: str):
    made = _run(wheel_venv, tmp_path, "new", "shop", "--lang", lang, "--protocol", "postgres")
    assert made.returncode == 0, made.stderr
    project = tmp_path / "shop"
    assert (project / "tests" / "test_filter.py").is_file()
    built = _run(wheel_venv, project, "build", "--json")
    assert built.returncode == 0, built.stderr
    assert Path(json.loads(built.stdout)["wasm"]) == project / "build" / "shop.wasm"
    tested = _run(wheel_venv, project, "test", "--", "-p", "no:cacheprovider")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "4 passed, 1 deselected" in tested.stdout
    # the generated tests ran against the wheel's wirelab, not this checkout's
    where = subprocess.run(
        [str(wheel_venv / "bin" / "python"), "-c",
         "import wirelab.testing, wirelab.scaffold as s; print(wirelab.testing.__file__);"
         "print(s.TEMPLATES)"],
        cwd=project, capture_output=True, text=True, check=True).stdout.split()
    assert all(p.startswith(str(wheel_venv)) for p in where), where
