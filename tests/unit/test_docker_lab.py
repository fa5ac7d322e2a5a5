"""The Lab's docker backend.

Without an engine: the container bootstrap passes the real `envoy --mode
validate` over exactly the files the Envoy container would mount, the specs
mount and publish what they should, and `Lab(backend="docker")` / `wirelab up
--backend docker` fail in one line. With an engine (skipped otherwise, saying
so): a whole docker lab runs, real clients go through Envoy, and nothing is
left behind.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from wirelab.envoy import FilterSpec, ListenerSpec, validate_config
from wirelab.envoy.render import (
    CONTAINER_WASM_DIR,
    container_wasm_paths,
    render_container_bootstrap,
)
from wirelab.errors import EnvoyError, WirelabError
from wirelab.harness import Lab
from wirelab.harness.docker_lab import (
    ADMIN_PORT,
    LAB_LABEL,
    LISTENER_PORTS,
    OWNER_LABEL,
    DockerLab,
    engine_is_local,
    is_orphan,
    owner_label,
)
from wirelab.harness.filters import resolve_filter
from wirelab.servers.docker_backend import (
    ENVOY_CONFIG_PATH,
    ENVOY_IMAGE,
    MYSQL_IMAGE,
    POSTGRES_IMAGE,
    DockerBackend,
)

ROOT = Path(__file__).resolve().parents[2]
BYTES_COUNTER = ROOT / "examples" / "bytes-counter"
PG_FILTER = ROOT / "filters" / "postgres"
MYSQL_FILTER = ROOT / "filters" / "mysql"
UPSTREAMS = {"postgres": ("172.30.0.2", 5432), "mysql": ("172.30.0.3", 3306)}


@pytest.fixture(scope="module")
def chains() -> dict[str, list[FilterSpec]]:
    """Real built filters as the Lab resolves them: one for every listener, one per protocol."""
    resolved = [resolve_filter(t) for t in (BYTES_COUNTER, PG_FILTER, MYSQL_FILTER)]
    return {kind: [f.spec for f in resolved if f.applies_to(kind)] for kind in LISTENER_PORTS}


@pytest.fixture
def lab(chains) -> DockerLab:
    lab = DockerLab(postgres=True, mysql=True, chains=chains, concurrency=2)
    yield lab
    lab.close()  # never started: removes only its config directory


def _wasm_in(yaml_text: str) -> list[str]:
    return re.findall(r'filename: "([^"]+)"', yaml_text)


# --- the bootstrap -----------------------------------------------------------
def test_container_bootstrap_passes_envoy_validate_over_the_mounted_files(lab, tmp_path):
    """Lay out the Envoy container's filesystem from the spec's volumes (each
    mount a copy of its host file at tmp/<container path>), point the rendered
    bootstrap's /etc/envoy/wasm at it, and let real Envoy validate the result."""
    listeners = lab.listeners(UPSTREAMS)
    config = lab.write_config(listeners)
    spec = lab.envoy_spec(listeners, config)
    container_fs = tmp_path / "container"
    for host, inside in spec.volumes.items():
        target = container_fs / inside.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(host, target)
    mounted = (container_fs / ENVOY_CONFIG_PATH.lstrip("/")).read_text()
    assert mounted == config.read_text() == lab.config_yaml
    local_view = mounted.replace(f"{CONTAINER_WASM_DIR}/",
                                 f"{container_fs}{CONTAINER_WASM_DIR}/")
    assert local_view != mounted
    validate_config(local_view)


def test_container_bootstrap_binds_inside_the_container_and_targets_the_network(lab):
    text = render_container_bootstrap(lab.listeners(UPSTREAMS), ADMIN_PORT)
    assert "socket_address: {address: 0.0.0.0, port_value: 9901}" in text
    for kind, (ip, port) in UPSTREAMS.items():
        assert f"socket_address: {{address: \"0.0.0.0\", port_value: {LISTENER_PORTS[kind]}}}" \
            in text
        assert f"socket_address: {{address: \"{ip}\", port_value: {port}}}" in text
    assert "127.0.0.1" not in text
    paths = _wasm_in(text)
    assert paths and all(p.startswith(f"{CONTAINER_WASM_DIR}/") for p in paths)
    # bytes-counter on both listeners, each protocol filter on its own one.
    assert sorted(set(paths)) == sorted(
        f"{CONTAINER_WASM_DIR}/{n}.wasm" for n in ("bytes-counter", "postgres", "mysql"))
    assert len(paths) == 4


def test_container_bootstrap_refuses_what_a_container_cannot_run(tmp_path):
    wasm = tmp_path / "f.wasm"
    wasm.write_bytes(b"\0asm\1\0\0\0")
    other = tmp_path / "g.wasm"
    other.write_bytes(b"\0asm\1\0\0\0")
    with pytest.raises(EnvoyError, match="has no port"):
        render_container_bootstrap([ListenerSpec("db", ("10.0.0.2", 1))], ADMIN_PORT)
    with pytest.raises(EnvoyError, match="no path inside the container"):
        render_container_bootstrap(
            [ListenerSpec("db", ("10.0.0.2", 1), [FilterSpec("f", wasm)], port=2)],
            ADMIN_PORT, {other: f"{CONTAINER_WASM_DIR}/g.wasm"})
    with pytest.raises(EnvoyError, match="does not exist"):
        render_container_bootstrap(
            [ListenerSpec("db", ("10.0.0.2", 1), [FilterSpec("f", tmp_path / "x.wasm")],
                          port=2)], ADMIN_PORT)


def test_wasm_paths_mount_each_file_once_and_never_collide(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    one, two = tmp_path / "a" / "f.wasm", tmp_path / "b" / "f.wasm"
    for path in (one, two):
        path.write_bytes(b"\0asm\1\0\0\0")
    listeners = [ListenerSpec("x", ("10.0.0.2", 1), [FilterSpec("p", one), FilterSpec("q", two)]),
                 ListenerSpec("y", ("10.0.0.3", 1), [FilterSpec("p", one)])]
    assert container_wasm_paths(listeners) == {
        one.resolve(): f"{CONTAINER_WASM_DIR}/f.wasm",
        two.resolve(): f"{CONTAINER_WASM_DIR}/f-2.wasm",
    }


# --- the container specs -----------------------------------------------------
def test_envoy_container_mounts_exactly_the_config_and_the_filters_read_only(lab, chains):
    listeners = lab.listeners(UPSTREAMS)
    spec = lab.envoy_spec(listeners, lab.write_config(listeners))
    kwargs = spec.run_kwargs()
    wasm_files = {f.wasm.resolve() for chain in chains.values() for f in chain}
    assert len(wasm_files) == 3
    assert set(kwargs["volumes"]) == {str(lab.workdir / "envoy.yaml")} | {
        str(p) for p in wasm_files}
    assert all(v["mode"] == "ro" for v in kwargs["volumes"].values())
    assert kwargs["volumes"][str(lab.workdir / "envoy.yaml")]["bind"] == ENVOY_CONFIG_PATH
    # The container paths are the ones the bootstrap names, and nothing else.
    wasm_binds = {v["bind"] for h, v in kwargs["volumes"].items() if h.endswith(".wasm")}
    assert wasm_binds == set(_wasm_in(lab.config_yaml))
    # Published on the host's loopback only, on ports the engine picks.
    assert kwargs["ports"] == {
        "15432/tcp": ("127.0.0.1", None), "13306/tcp": ("127.0.0.1", None),
        f"{ADMIN_PORT}/tcp": ("127.0.0.1", None)}
    assert kwargs["image"] == ENVOY_IMAGE
    assert kwargs["network"] == lab.network_name
    assert kwargs["name"] == f"{lab.network_name}-envoy"
    assert kwargs["labels"] == {LAB_LABEL: lab.lab_id, OWNER_LABEL: owner_label(),
                                "wirelab.role": "envoy"}
    assert kwargs["environment"] == {"ENVOY_UID": "0"}
    assert kwargs["command"][-2:] == ["--concurrency", "2"]
    assert spec.ready_http == (ADMIN_PORT, "/ready")
    # Readable by the container whatever the user's umask.
    assert (lab.workdir / "envoy.yaml").stat().st_mode & 0o777 == 0o644


def test_database_containers_join_the_lab_network_and_publish_on_loopback(lab):
    specs = lab.server_specs()
    assert {k: s.image for k, s in specs.items()} == {"postgres": POSTGRES_IMAGE,
                                                      "mysql": MYSQL_IMAGE}
    for kind, spec in specs.items():
        kwargs = spec.run_kwargs()
        assert kwargs["network"] == lab.network_name
        assert kwargs["labels"][LAB_LABEL] == lab.lab_id
        assert all(bind[0] == "127.0.0.1" for bind in kwargs["ports"].values())
        assert "healthcheck" in kwargs, f"{kind}: the lab waits on the healthcheck"
    assert "ssl=on" not in specs["postgres"].command
    assert "ssl=on" in DockerLab(postgres=True, tls=True).server_specs()["postgres"].command


def _engine_request(spec) -> dict:
    """The Engine API body the docker SDK would send to create `spec`'s container,
    built by the SDK's own translation of `containers.run` arguments (no engine)."""
    from docker.models.containers import _create_container_args
    from docker.types import ContainerConfig

    kwargs = spec.run_kwargs()
    assert kwargs.pop("detach") is True
    create = _create_container_args({**kwargs, "version": "1.44"})
    create.pop("name")
    return dict(ContainerConfig("1.44", **create))


def test_the_engine_is_asked_for_loopback_ports_read_only_binds_and_the_network(lab):
    pytest.importorskip("docker", reason="needs the docker SDK (pip install 'wirelab[docker]')")
    listeners = lab.listeners(UPSTREAMS)
    envoy = _engine_request(lab.envoy_spec(listeners, lab.write_config(listeners)))
    servers = [_engine_request(s) for s in lab.server_specs().values()]
    for body in (envoy, *servers):
        host = body["HostConfig"]
        assert host["NetworkMode"] == lab.network_name
        bindings = [b for port in host["PortBindings"].values() for b in port]
        assert bindings and all(b == {"HostIp": "127.0.0.1", "HostPort": ""} for b in bindings)
    binds = envoy["HostConfig"]["Binds"]
    assert len(binds) == 4 and all(b.endswith(":ro") for b in binds)
    assert f"{lab.workdir / 'envoy.yaml'}:{ENVOY_CONFIG_PATH}:ro" in binds
    assert set(envoy["ExposedPorts"]) == {"15432/tcp", "13306/tcp", f"{ADMIN_PORT}/tcp"}
    assert all("Healthcheck" in body for body in servers)


def test_only_the_asked_servers_and_listeners():
    lab = DockerLab(mysql=True)
    assert list(lab.server_specs()) == ["mysql"]
    assert [ls.name for ls in lab.listeners(UPSTREAMS)] == ["mysql"]
    assert lab.listeners(UPSTREAMS)[0].filters == []


def test_orphans_are_this_hosts_labs_whose_process_is_gone():
    alive = {100}.__contains__
    assert is_orphan("box:200", "box", alive)
    assert not is_orphan("box:100", "box", alive)
    assert not is_orphan("other:200", "box", alive)
    assert not is_orphan("garbage", "box", alive)
    assert not is_orphan("", "box", alive)
    assert owner_label().endswith(f":{os.getpid()}")


def test_engine_must_be_on_this_machine():
    assert engine_is_local("unix:///var/run/docker.sock")
    assert engine_is_local("tcp://127.0.0.1:2375")
    assert engine_is_local("tcp://localhost:2376")
    assert not engine_is_local("tcp://10.1.2.3:2375")
    assert not engine_is_local("ssh://me@build-box")


# --- without an engine: one line ---------------------------------------------
@pytest.fixture
def no_engine(tmp_path, monkeypatch) -> Path:
    """A DOCKER_HOST where no engine listens: the real no-engine condition."""
    sock = tmp_path / "no-engine.sock"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{sock}")
    return sock


def test_lab_without_an_engine_fails_in_one_line_before_building(no_engine, tmp_path):
    # A filter that cannot build: the engine check comes first, so its error is the one seen.
    lab = Lab(postgres=True, filters=[tmp_path / "not-a-project"], backend="docker")
    with pytest.raises(WirelabError) as err:
        lab.start()
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("the docker backend needs a Docker engine: no Docker engine answers "
                          f"at unix://{no_engine} (No such file or directory)")
    assert msg.endswith("start Docker or set DOCKER_HOST, or use --backend local")
    assert lab.envoy is None and lab.docker is None


def test_wirelab_up_docker_without_an_engine_says_so_in_one_line(no_engine, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "wirelab", "up", "--backend", "docker", "--postgres"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
        env={**os.environ, "DOCKER_HOST": f"unix://{no_engine}"})
    assert proc.returncode == 1
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("wirelab: error:")]
    assert errors == [
        f"wirelab: error: the docker backend needs a Docker engine: no Docker engine answers "
        f"at unix://{no_engine} (No such file or directory); start Docker or set DOCKER_HOST, "
        "or use --backend local"]
    assert "Traceback" not in proc.stderr


def test_pg_bin_is_a_local_backend_option(no_engine):
    with pytest.raises(WirelabError, match="drop --pg-bin or use --backend local"):
        Lab(postgres=True, pg_bin="/usr/lib/postgresql/15/bin", backend="docker").start()


def test_closing_a_lab_that_never_started_is_harmless():
    lab = DockerLab(postgres=True)
    lab.close()
    lab.close()
    assert not lab.workdir.exists()


# --- with an engine ------------------------------------------------------------
def _engine() -> None:
    available = DockerBackend.available()
    if not available:
        pytest.skip(f"needs a Docker engine: {available.reason} "
                    "(and `pip install 'wirelab[docker]'`)")


def _leftovers(lab_id: str) -> list[str]:
    import docker

    client = docker.from_env()
    try:
        label = {"label": f"{LAB_LABEL}={lab_id}"}
        return ([c.name for c in client.containers.list(all=True, filters=label)]
                + [n.name for n in client.networks.list(filters=label)])
    finally:
        client.close()


@pytest.mark.e2e
@pytest.mark.timeout(900)  # first run pulls three images
def test_docker_lab_end_to_end():
    """postgres:18 and mysql:8.4 behind envoyproxy/envoy with a filter on both
    listeners: psycopg and pymysql connect through Envoy on 127.0.0.1, the
    filter and tcp_proxy count them, and close() leaves nothing behind."""
    _engine()
    psycopg = pytest.importorskip("psycopg")
    pymysql = pytest.importorskip("pymysql")
    pytest.importorskip("cryptography", reason="pymysql needs `cryptography` for MySQL 8.4's "
                        "caching_sha2_password over plaintext (pip install cryptography)")
    with Lab(postgres=True, mysql=True, filters=[BYTES_COUNTER], backend="docker",
             filter_config={"stat_prefix": "dock"}) as lab:
        assert lab.docker is not None
        lab_id, workdir = lab.docker.lab_id, lab.docker.workdir
        assert lab.pg_conninfo()["host"] == lab.mysql_kwargs()["host"] == "127.0.0.1"
        assert lab.admin_url.startswith("http://127.0.0.1:")
        with psycopg.connect(**lab.pg_conninfo()) as conn:
            assert conn.execute("SHOW server_version").fetchone()[0].startswith("18")
        # First login: caching_sha2_password's full (RSA) exchange; second: the cache.
        for _ in range(2):
            with pymysql.connect(**lab.mysql_kwargs()) as conn, conn.cursor() as cur:
                cur.execute("SELECT VERSION()")
                assert cur.fetchone()[0].startswith("8.4")
        with psycopg.connect(**lab.pg_conninfo(direct=True)) as conn:
            conn.execute("SELECT 1")
        if shutil.which("mariadb"):
            out = subprocess.run(["mariadb", *lab.mysql_cli_args(), "-N", "-e", "SELECT 6*7"],
                                 capture_output=True, text=True, timeout=30)
            assert out.stdout.strip() == "42", out.stderr
        lab.stats.wait_for("tcp.dock.connections_total", 4 if shutil.which("mariadb") else 3)
        snap = lab.stats.snapshot()
        assert snap.counter("tcp.postgres.downstream_cx_total") == 1
        state = lab.state()
        assert state["servers"]["postgres"]["port"] == lab.port("postgres")
        assert state["servers"]["postgres"]["direct_port"] == lab.port("postgres", direct=True)
        assert state["pids"] == {"envoy": None, "postgres": None, "mysql": None}
        assert set(state["docker"]["containers"]) == {"postgres", "mysql", "envoy"}
        assert "envoy" in lab.log_tail().lower()
    assert _leftovers(lab_id) == []
    assert not workdir.exists()


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_docker_lab_reports_an_envoy_failure_in_one_line_and_cleans_up(tmp_path):
    _engine()
    broken = tmp_path / "broken.wasm"
    broken.write_bytes(b"this is not wasm")
    lab = Lab(postgres=True, filters=[broken], backend="docker")
    with pytest.raises(EnvoyError) as err:
        lab.start()
    assert "\n" not in str(err.value)
    assert lab.docker is not None
    assert _leftovers(lab.docker.lab_id) == []


def _owned_by(pid: int) -> list[str]:
    import docker

    client = docker.from_env()
    try:
        label = {"label": f"{OWNER_LABEL}={socket.gethostname()}:{pid}"}
        return ([c.name for c in client.containers.list(all=True, filters=label)]
                + [n.name for n in client.networks.list(filters=label)])
    finally:
        client.close()


def _start_lab_in_a_child() -> subprocess.Popen:
    code = ("from wirelab.harness import Lab\n"
            "Lab(postgres=True, mysql=True, backend='docker').start()\n"
            "import time; time.sleep(600)\n")
    child = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while not _owned_by(child.pid):
        assert child.poll() is None and time.monotonic() < deadline
        time.sleep(0.2)
    return child


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_ctrl_c_during_start_removes_the_network_and_containers():
    _engine()
    child = _start_lab_in_a_child()
    child.send_signal(signal.SIGINT)
    child.wait(120)
    assert _owned_by(child.pid) == []


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_a_killed_labs_containers_go_with_the_next_lab():
    import docker

    from wirelab.harness.docker_lab import reap_orphans

    _engine()
    child = _start_lab_in_a_child()
    child.kill()
    child.wait(30)
    assert _owned_by(child.pid)  # SIGKILL: nothing could clean up
    client = docker.from_env()
    try:
        reap_orphans(client)
    finally:
        client.close()
    assert _owned_by(child.pid) == []
