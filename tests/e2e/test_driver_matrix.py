"""The driver matrix: every mainstream driver through Envoy, every figure equal to the
server's own.

Each cell is one driver's workload (wirelab.truth.workloads) seen by one filter on the
listener: the shipped C filter, and the shipped Lua example that counts statements
(examples/lua/pg-statements, examples/lua/mysql-statements). Expected values come from
the server for the same run: pg_stat_statements calls and rows of top-level
statements and pg_stat_database transactions of a database only the workload used
(PostgreSQL), SHOW GLOBAL STATUS Com_* and Rows_sent deltas (MariaDB). Each workload
runs once, through a recorder in front of Envoy; its conversation then replays in the
emulator, where the recorded reads must give Envoy's figures and chunking "1" and
"random" the metrics of the recorded reads.

`wirelab truth` prints the same matrix as a grid.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from wirelab.truth.matrix import LUA_COUNTERS, ProtocolLab, Run
from wirelab.truth.replaycheck import chunking_differences, replay_metrics
from wirelab.truth.workloads import WORKLOADS

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _filters(protocol: str) -> list[str]:
    """The filters a cell can be: the C filter, and the Lua example when one counts
    statements for this protocol."""
    lua = LUA_COUNTERS.get(protocol)
    return ["filter"] + ([f"lua:{lua.example}"] if lua else [])


def _cells(protocol: str) -> list:
    return [pytest.param(w.name, f, id=f"{w.name}-{f}")
            for w in WORKLOADS if w.protocol == protocol for f in _filters(protocol)]


class Runs:
    """Each workload runs once per module (recorded); cells and replays read the run."""

    def __init__(self, plab: ProtocolLab, recordings: Path):
        self.plab = plab
        self.recordings = recordings
        self.done: dict[str, Run] = {}

    def get(self, name: str) -> Run:
        if name not in self.done:
            workload = next(w for w in WORKLOADS if w.name == name)
            self.done[name] = self.plab.run(workload, self.recordings / f"{name}.jsonl")
        run = self.done[name]
        if run.skipped:
            pytest.skip(run.skipped)
        assert run.error is None, f"{name}: {run.error}"
        return run


def _lab(protocol: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    from wirelab.servers import ServerError

    try:
        with ProtocolLab(protocol) as plab:
            yield Runs(plab, tmp_path_factory.mktemp(f"{protocol}-recordings"))
    except ServerError as exc:
        pytest.skip(f"no {protocol} server: {exc}")


@pytest.fixture(scope="module")
def pg_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    yield from _lab("postgres", tmp_path_factory)


@pytest.fixture(scope="module")
def my_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    pytest.importorskip("pymysql", reason="PyMySQL reads MariaDB's status: pip install pymysql")
    yield from _lab("mysql", tmp_path_factory)


def _assert_cell(run: Run, filter_name: str) -> None:
    cell = next(c for c in run.cells() if c.filter == filter_name)
    assert cell.figures, "no figure to compare"
    filter_side = {f.name: f.filter for f in cell.figures}
    server_side = {f.name: f.server for f in cell.figures}
    assert filter_side == server_side, (
        f"{run.workload.name} [{filter_name}] filter != server; "
        f"client rows {run.detail.get('client_rows')}; "
        f"statements {run.detail.get('pg_stat_statements', '')}")


def _assert_replay(runs: Runs, run: Run, filter_name: str) -> None:
    assert run.recording is not None and run.recording.is_file()
    spec = runs.plab.specs[filter_name]
    recorded = replay_metrics(spec, run.recording, "recorded")
    # Where Envoy's counts are true, the emulator fed the recorded reads counts the same.
    # (Where they are not, e.g. a decoder blinded by deep pipelining, how far it got can
    # depend on how client and server bytes interleaved, which the extra hop through
    # the recorder may change.)
    cell = next(c for c in run.cells() if c.filter == filter_name)
    if cell.ok:
        emulated = runs.plab.figures_of(recorded["counters"])[filter_name]
        assert emulated == run.filters[filter_name]
    diffs = chunking_differences(spec, run.recording, base=recorded)
    assert diffs == {"1": [], "random": []}


@pytest.mark.parametrize(("workload", "filter_name"), _cells("postgres"))
def test_postgres_driver_counts_equal_the_server(pg_runs: Runs, workload: str,
                                                 filter_name: str) -> None:
    _assert_cell(pg_runs.get(workload), filter_name)


@pytest.mark.parametrize(("workload", "filter_name"), _cells("postgres"))
def test_postgres_recorded_driver_replays_the_same_under_any_chunking(
        pg_runs: Runs, workload: str, filter_name: str) -> None:
    _assert_replay(pg_runs, pg_runs.get(workload), filter_name)


@pytest.mark.parametrize(("workload", "filter_name"), _cells("mysql"))
def test_mysql_driver_counts_equal_the_server(my_runs: Runs, workload: str,
                                              filter_name: str) -> None:
    _assert_cell(my_runs.get(workload), filter_name)


@pytest.mark.parametrize(("workload", "filter_name"), _cells("mysql"))
def test_mysql_recorded_driver_replays_the_same_under_any_chunking(
        my_runs: Runs, workload: str, filter_name: str) -> None:
    _assert_replay(my_runs, my_runs.get(workload), filter_name)
