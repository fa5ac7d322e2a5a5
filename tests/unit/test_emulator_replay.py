"""Replay of conversations through a header-only decoder probe, and `wirelab replay`."""

from __future__ import annotations

import json
import struct

import pytest
from click.testing import CliRunner
from test_emulator import compile_probe

from wirelab.cli import main
from wirelab.conversation import Conversation
from wirelab.replay import rechunk, replay


@pytest.fixture(scope="session")
def header_probe(tmp_path_factory):
    return compile_probe("header", tmp_path_factory.mktemp("header"))


def msg(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack(">I", len(body) + 4) + body


def conversation() -> Conversation:
    """Two connections; queries answered 2 ms and 5 ms later; several messages per read."""
    conv = Conversation(protocol="postgres")
    conv.open(0, 0.0, "10.9.9.9:50000", "127.0.0.1:6432")
    conv.data(0, 0.010, "client", msg(b"Q", b"select 1\0"))
    conv.data(0, 0.012, "server", msg(b"T", b"x" * 30) + msg(b"D", b"y" * 9000)
              + msg(b"C", b"SELECT 1\0") + msg(b"Z", b"I"))
    conv.open(1, 0.013)
    conv.data(1, 0.020, "client", msg(b"Q", b"select 2\0"))
    conv.data(1, 0.025, "server", msg(b"Z", b"I"))
    conv.data(0, 0.030, "client", msg(b"X", b""))
    conv.close(0, 0.031, "client")
    conv.close(1, 0.040, "server")
    return conv


EXPECTED = {
    "hdr.bytes.direction=client": 14 + 14 + 5,
    "hdr.bytes.direction=server": 35 + 9005 + 14 + 6 + 6,
    "hdr.messages.direction=client": 3,
    "hdr.messages.direction=server": 5,
    "hdr.queries": 2,
}


@pytest.mark.parametrize("chunking", ["recorded", "1", "random", "coalesced"])
def test_counts_do_not_depend_on_read_boundaries(header_probe, chunking):
    result = replay(header_probe, conversation(), chunking=chunking, seed=7)
    assert result.metrics.as_dict()["counters"] == EXPECTED
    lat = result.metrics.histogram("hdr.query_latency_us")
    # The virtual clock follows the recorded times, so latency is exact; split reads
    # keep their event's time, so the split does not change it.
    assert lat.samples == [2000, 5000]
    assert result.connections == 2 and result.unclosed == []
    assert result.traps == [] and not result.as_dict()["modified"]


def test_rechunk_keeps_bytes():
    conv = conversation()
    for mode in ("1", "random", "coalesced"):
        events = rechunk(conv.events, mode, seed=3)
        for cid in (0, 1):
            for d in ("client", "server"):
                got = b"".join(e.data for e in events if e.conn == cid and e.dir == d)
                assert got == b"".join(
                    e.data for e in conv.events if e.conn == cid and e.dir == d)
    assert len(rechunk(conv.events, "1")) == conv.total_bytes() + 4  # + 2 opens, 2 closes
    with pytest.raises(Exception, match="unknown chunking"):
        rechunk(conv.events, "2")


def test_cli_replay_json(header_probe, tmp_path):
    path = conversation().save(tmp_path / "c.jsonl")
    res = CliRunner().invoke(main, ["replay", str(header_probe), str(path), "--chunking", "1",
                                    "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["counters"] == EXPECTED
    assert out["histograms"] == {"hdr.query_latency_us": {"count": 2, "sum": 7000}}
    assert out["logs"] == [] and out["traps"] == []


def test_cli_replay_errors(header_probe, tmp_path):
    res = CliRunner().invoke(main, ["replay", str(header_probe), str(tmp_path / "none.jsonl")])
    assert res.exit_code == 1
    assert "does not exist (record one with `wirelab record`)" in res.output


def test_bytes_counter_example(tmp_path):
    """The SDK-built example, built by the real build pipeline, replayed from a file."""
    from wirelab.build import build_project
    from wirelab.paths import examples_dir
    from wirelab.project import Project

    src = examples_dir() / "bytes-counter"
    if not (src / "wirelab.toml").is_file():
        pytest.skip("examples/bytes-counter is missing from this checkout")
    import shutil

    shutil.copytree(src, tmp_path / "bc", ignore=shutil.ignore_patterns("build"))
    project = Project.load(tmp_path / "bc")
    wasm = build_project(project).wasm
    path = conversation().save(tmp_path / "c.jsonl")
    result = replay(wasm, path, chunking="random", seed=5, plugin_config=project.manifest.config)
    prefix = f"tcp.{project.manifest.config['stat_prefix']}"
    assert result.metrics.as_dict()["counters"] == {
        f"{prefix}.bytes_total.direction=client": EXPECTED["hdr.bytes.direction=client"],
        f"{prefix}.bytes_total.direction=server": EXPECTED["hdr.bytes.direction=server"],
        f"{prefix}.connections_total": 2,
    }
    assert result.metrics.gauge(f"{prefix}.connections_active") == 0
    assert result.traps == [] and not result.host.modifications
