"""The `wirelab` command line. Thin: parse, call one module, print."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path

import click
from rich.console import Console

from .errors import WirelabError

console = Console(stderr=True, highlight=False)


def stdout_console() -> Console:
    """Rich on stdout; piped output gets 120 columns so stat names stay whole."""
    return Console(highlight=False, width=None if sys.stdout.isatty() else 120)


class _Group(click.Group):
    """Turns a WirelabError into one line on stderr and a non-zero exit."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except WirelabError as exc:
            click.echo(f"wirelab: error: {exc}", err=True)
            sys.exit(exc.exit_code)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="wirelab")
def main() -> None:
    """Build, test and run Envoy network filters that turn database traffic into metrics."""


# --- build -----------------------------------------------------------------
@main.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--force", is_flag=True, help="Rebuild even when nothing changed.")
@click.option("--target", type=click.Choice(["wasm", "native", "all"]), default=None,
              help="build/<name>.wasm, build/lib<name>.so (Envoy dynamic module), or both "
                   "(default: the manifest's `targets`, else wasm).")
def build(directory: Path, as_json: bool, force: bool, target: str | None) -> None:
    """Compile the filter project in DIRECTORY to build/<name>.wasm (and/or lib<name>.so)."""
    from .build import build_targets
    from .project import TARGETS, Project

    wanted = list(TARGETS) if target == "all" else [target] if target else None
    try:
        results = build_targets(Project.load(directory), wanted, force=force)
    except WirelabError as exc:
        if not as_json:
            raise
        # A CI consumer reads stdout: the failure is JSON too, one error per line.
        click.echo(json.dumps({"ok": False, "errors": str(exc).splitlines()}))
        sys.exit(exc.exit_code)
    for result in results:
        for warning in getattr(result, "warnings", ()):
            click.echo(f"wirelab: warning: {warning}", err=True)
    if as_json:
        def one(r: object) -> dict:
            return {"ok": True, **r.as_dict(), "warnings": list(getattr(r, "warnings", ()))}

        # One target: its result. Several: each target's path at the top, as with one
        # (`["wasm"]` is always a path), and each whole result under "targets".
        out = one(results[0]) if len(results) == 1 else {
            "ok": True, **{r.target: str(r.wasm) for r in results},
            "targets": {r.target: one(r) for r in results}}
        click.echo(json.dumps(out))
    else:
        for result in results:
            state = "up to date" if result.cached else "built"
            click.echo(f"{state}: {result.wasm} ({result.bytes:,} bytes, {result.seconds:.2f} s)")


# --- doctor ----------------------------------------------------------------
@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print the components as JSON.")
def doctor(as_json: bool) -> None:
    """Show what is installed, what is missing and how to get it."""
    from .doctor import check_all, core_ok, render_table

    components = check_all()
    if as_json:
        click.echo(json.dumps([c.as_dict() for c in components], indent=2))
    else:
        Console().print(render_table(components))
    sys.exit(0 if core_ok(components) else 1)


# --- record ----------------------------------------------------------------
@main.command()
@click.option("--listen", default="127.0.0.1:0", show_default=True,
              help="HOST:PORT to accept clients on.")
@click.option("--upstream", required=True, help="HOST:PORT of the real server.")
@click.option("-o", "--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Conversation file to write (JSON Lines).")
@click.option("--protocol", default="tcp", show_default=True,
              help="Protocol name stored in the file.")
def record(listen: str, upstream: str, out: Path, protocol: str) -> None:
    """Relay clients to a server and record the traffic until Ctrl-C or SIGTERM."""
    import signal
    import threading

    from .record import Recorder, parse_hostport

    rec = Recorder(parse_hostport(listen), parse_hostport(upstream), out=out, protocol=protocol)
    stop = threading.Event()
    # SIGTERM is how scripts and CI stop things; SIGINT is set explicitly because a
    # shell starts background jobs with it ignored, and Python keeps that.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    rec.start()
    console.print(f"recording {rec.host}:{rec.port} -> {upstream} into {out} "
                  "(Ctrl-C or SIGTERM stops)")
    last = None
    while True:
        s = rec.stats
        now = (s.connections, s.active, s.client_bytes, s.server_bytes)
        if now != last:
            console.print(
                f"connections {s.connections} (open {s.active}), client→server "
                f"{s.client_bytes:,} B, server→client {s.server_bytes:,} B"
            )
            last = now
        if stop.wait(0.5):
            break
    conv = rec.stop()
    console.print(f"wrote {out}: {len(conv.connections)} connection(s), {len(conv.events)} events")


# --- lab: up / down / stats / config ----------------------------------------
def _lab_kwargs(postgres: bool, mysql: bool, filters: tuple[Path, ...], backend: str,
                pg_bin: Path | None, tls: bool, target: str = "wasm",
                prometheus: bool = False) -> dict:
    if not (postgres or mysql):
        postgres = mysql = True
    kwargs = {"postgres": postgres, "mysql": mysql, "filters": [str(f) for f in filters],
              "backend": backend, "pg_bin": str(pg_bin) if pg_bin else None, "tls": tls}
    if target != "wasm":
        kwargs["target"] = target
    if prometheus:
        kwargs["prometheus"] = True
    return kwargs


@main.command()
@click.option("--postgres", is_flag=True, help="Start PostgreSQL (default: both servers).")
@click.option("--mysql", is_flag=True, help="Start MariaDB (default: both servers).")
@click.option("--filter", "filters", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="A filter project directory or .wasm; repeatable.")
@click.option("--backend", type=click.Choice(["local", "docker"]), default="local",
              show_default=True)
@click.option("--pg-bin", type=click.Path(file_okay=False, path_type=Path),
              help="Directory with another PostgreSQL's server binaries.")
@click.option("--tls", is_flag=True,
              help="Enable TLS on the servers (filters then only count TLS sessions).")
@click.option("--state", type=click.Path(dir_okay=False, path_type=Path),
              help="Write connection details to this JSON file and detach.")
@click.option("--target", type=click.Choice(["wasm", "native"]), default="wasm",
              show_default=True, help="Run project filters as Wasm or as native Envoy modules.")
@click.option("--prometheus", is_flag=True,
              help="Also start Prometheus (apt-get install prometheus), scraping Envoy every 1 s.")
@click.option("--watch", is_flag=True,
              help="Deliver the filters through ECDS; rebuild and swap one in when it is saved.")
@click.option("--xds", is_flag=True,
              help="Envoy reads the filters from an export directory (as `xds export` writes).")
def up(postgres: bool, mysql: bool, filters: tuple[Path, ...], backend: str,
       pg_bin: Path | None, tls: bool, state: Path | None, target: str, prometheus: bool,
       watch: bool, xds: bool) -> None:
    """Start servers and Envoy with filters; stay up until Ctrl-C (or detach with --state)."""
    from .harness.lifecycle import run_foreground, start_detached

    kwargs = _lab_kwargs(postgres, mysql, filters, backend, pg_bin, tls, target, prometheus)
    if (xds or watch) and target == "native":
        raise WirelabError("--xds/--watch deliver Wasm filters only: drop --target native")
    # One path, not two: a local Wasm lab runs the very files `wirelab xds export`
    # writes (LDS/CDS/ECDS), as a fleet would.
    if xds or (target == "wasm" and backend == "local"):
        kwargs["xds"] = True
    if watch:
        from .cli_xds import report_change, run_watch

        if state:
            raise WirelabError("--watch runs in the foreground: drop --state")
        console.print("starting servers and Envoy (filters through ECDS) ...")
        run_watch(kwargs, report_change)
        return
    if state:
        info = start_detached(kwargs, state)
        click.echo(f"lab running in the background; state in {state}")
        for label, value in info.get("connect", []):
            click.echo(f"  {label:18} {value}")
        click.echo(f"stop it with: wirelab down --state {state}")
        return

    def ready(lab) -> None:
        out = Console(highlight=False)
        out.print("[bold]wirelab lab is up[/] (Ctrl-C stops it)")
        for label, value in lab.connection_strings():
            out.print(f"  {label:18} {value}")

    console.print("starting servers and Envoy ...")
    run_foreground(kwargs, ready,
                   lambda line: click.echo(f"filter error: {line}", err=True))


def _client_command(kind: str, state: Path, direct: bool, args: tuple[str, ...]) -> list[str]:
    from .harness.state import read_state

    info = read_state(state)
    server = info["servers"].get(kind)
    if server is None:
        raise WirelabError(f"the lab in {state} has no {kind} server: start it with --{kind}")
    port = str(server["direct_port"] if direct else server["port"])
    if kind == "postgres":
        url = (f"postgresql://{server['user']}:{server['password']}@{server['host']}:{port}/"
               f"{server['database']}")
        return ["psql", "-X", url, *args]
    # The client takes TLS whenever the server offers it, which would hide the
    # session from the filters; a lab started without --tls means plaintext.
    tls = [] if info.get("tls") else ["--skip-ssl"]
    return ["mariadb", "--no-defaults", "--protocol=TCP", f"--host={server['host']}",
            f"--port={port}", f"--user={server['user']}", f"--password={server['password']}",
            *tls, server["database"], *args]


def _exec_client(cmd: list[str]) -> None:
    import os
    import shutil

    if shutil.which(cmd[0]) is None:
        package = "postgresql-client" if cmd[0] == "psql" else "mariadb-client"
        raise WirelabError(f"{cmd[0]} is not installed: apt-get install {package}")
    os.execvp(cmd[0], cmd)


_STATE_OPTION = click.option(
    "--state", required=True, type=click.Path(dir_okay=False, path_type=Path),
    help="The state file written by `wirelab up --state`.")


@main.command(context_settings={"ignore_unknown_options": True})
@_STATE_OPTION
@click.option("--direct", is_flag=True, help="Bypass Envoy and connect to the server itself.")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def psql(state: Path, direct: bool, args: tuple[str, ...]) -> None:
    """Run psql against a detached lab's PostgreSQL, through Envoy; ARGS go to psql."""
    _exec_client(_client_command("postgres", state, direct, args))


@main.command(context_settings={"ignore_unknown_options": True})
@_STATE_OPTION
@click.option("--direct", is_flag=True, help="Bypass Envoy and connect to the server itself.")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def mariadb(state: Path, direct: bool, args: tuple[str, ...]) -> None:
    """Run the mariadb client against a detached lab's MariaDB, through Envoy."""
    _exec_client(_client_command("mysql", state, direct, args))


@main.command()
@_STATE_OPTION
def down(state: Path) -> None:
    """Stop a lab started with `wirelab up --state FILE` and remove its files."""
    from .harness.lifecycle import stop_detached

    forced = stop_detached(state)
    if forced is None:
        click.echo(f"no lab was running with state file {state}; nothing to stop")
    elif forced:
        click.echo(f"stopped (had to kill: {', '.join(forced)})")
    else:
        click.echo("stopped")


@main.command()
@click.option("--admin", help="Envoy admin URL, e.g. http://127.0.0.1:9901.")
@click.option("--state", type=click.Path(dir_okay=False, path_type=Path),
              help="The state file written by `wirelab up --state`.")
@click.option("--watch", is_flag=True, help="Refresh every second until Ctrl-C.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "prom"]), default="table",
              show_default=True)
@click.option("--match", help="Only stats whose name contains this (or matches this glob).")
@click.option("--all", "everything", is_flag=True, help="Include Envoy's own stats too.")
@click.option("--nonzero", is_flag=True, help="Leave out stats that are still zero.")
def stats(admin: str | None, state: Path | None, watch: bool, fmt: str, match: str | None,
          everything: bool, nonzero: bool) -> None:
    """Show the filters' stats from a running Envoy."""
    import time

    from rich.live import Live

    from . import statsview
    from .envoy import StatsClient
    from .harness.state import read_state

    envoy_log = None
    if not admin:
        if not state:
            raise WirelabError("say which Envoy: --admin URL or --state FILE (from `wirelab up`)")
        info = read_state(state)
        admin, envoy_log = info["admin"], info.get("envoy_log")
    client = StatsClient(admin)

    def once() -> None:
        if fmt == "prom":
            click.echo(statsview.prometheus_text(client, match, everything), nl=False)
        elif fmt == "json":
            click.echo(statsview.as_json(client.snapshot(), match, everything))
        else:
            stdout_console().print(
                statsview.render_table(client.snapshot(), match, everything, nonzero))

    if not watch:
        once()
        _report_filter_errors(envoy_log)
        return
    if fmt != "table":
        try:
            while True:
                once()
                time.sleep(1)
        except KeyboardInterrupt:
            return
    try:
        def table():
            return statsview.render_table(client.snapshot(), match, everything, nonzero)

        with Live(table(), refresh_per_second=2) as live:
            while True:
                time.sleep(1)
                live.update(table())
    except KeyboardInterrupt:
        pass


def _report_filter_errors(envoy_log: str | None, limit: int = 10) -> None:
    """A filter's errors (a Lua error's message, file and line) from the lab's Envoy log,
    on stderr, so `stats` says why a `script_errors` counter moved."""
    from .envoy.process import filter_errors

    if not envoy_log or not Path(envoy_log).is_file():
        return
    errors = filter_errors(Path(envoy_log).read_text(errors="replace"))
    if errors:
        shown = errors[-limit:]
        click.echo(f"filter errors in Envoy's log ({len(errors)}, last {len(shown)}; "
                   f"all in {envoy_log}):", err=True)
        for line in shown:
            click.echo(f"  {line}", err=True)


@main.command()
@click.option("--state", type=click.Path(dir_okay=False, path_type=Path),
              help="The state file written by `wirelab up --state`.")
@click.option("--admin", help="Envoy admin URL instead of --state, e.g. http://127.0.0.1:9901.")
@click.option("--window", type=click.FloatRange(min=2), default=30.0, show_default=True,
              help="Seconds of history the p50/p99 figures cover.")
@click.option("--interval", type=click.FloatRange(min=0.2), default=None,
              help="Seconds between refreshes (default 1; 5 for plain lines).")
@click.option("--count", type=click.IntRange(min=1), default=None,
              help="Plain lines only: stop after this many refreshes.")
@click.option("--plain", is_flag=True, help="Plain lines even on a terminal.")
def top(state: Path | None, admin: str | None, window: float, interval: float | None,
        count: int | None, plain: bool) -> None:
    """A live dashboard of the filters: statements/s, p50/p99, errors, sessions, bytes/s.

    Keys: q quits, p pauses. Prints plain lines when stdout is not a terminal.
    """
    from .envoy import StatsClient
    from .harness.state import read_state
    from .top import Top, client_from_state, run_live, run_plain

    if admin:
        client, log = StatsClient(admin), None
    elif state:
        client, log = client_from_state(read_state(state))
    else:
        raise WirelabError("say which Envoy: --state FILE (from `wirelab up`) or --admin URL")
    dash = Top(client, window=window, envoy_log=log)
    try:
        if plain or count is not None or not sys.stdout.isatty():
            run_plain(dash, click.echo, interval=interval or 5.0, count=count)
        else:
            run_live(dash, Console(highlight=False), interval=interval or 1.0)
    except KeyboardInterrupt:
        pass


@main.command()
@click.argument("directory", type=click.Path(exists=True, path_type=Path))
@click.option("--listen", type=int, default=None,
              help="Port for the listener (default: 15432 for postgres, 13306 for mysql).")
@click.option("--upstream", default=None, metavar="HOST:PORT",
              help="The database server (default: 127.0.0.1:5432 or :3306).")
@click.option("--failure-policy", type=click.Choice(["FAIL_OPEN", "FAIL_CLOSED", "FAIL_RELOAD"]),
              default="FAIL_OPEN", show_default=True)
@click.option("--target", type=click.Choice(["wasm", "native"]), default="wasm",
              show_default=True,
              help="Wasm filter, or the native build (envoy.filters.network.dynamic_modules).")
@click.option("--bootstrap", is_flag=True,
              help="A complete configuration (admin, listener, cluster, stats rules) that "
                   "`envoy -c` runs as is, instead of pieces to merge.")
@click.option("--admin-port", type=int, default=9901, show_default=True,
              help="With --bootstrap: the admin API's port (on 127.0.0.1).")
def config(directory: Path, listen: int | None, upstream: str | None,
           failure_policy: str, target: str, bootstrap: bool, admin_port: int) -> None:
    """Print Envoy YAML (filter + tcp_proxy + stats_tags) for your own Envoy."""
    from .harness.userconfig import user_config

    click.echo(user_config(directory, listen, upstream, failure_policy, bootstrap, admin_port,
                           target=target), nl=False)


# --- demo ------------------------------------------------------------------
@main.command()
@click.option("--duration", type=click.FloatRange(min=8), default=60.0, show_default=True,
              help="Seconds of workload (four phases share them).")
@click.option("--keep", is_flag=True, help="Keep the lab running afterwards (until Ctrl-C).")
@click.option("--json", "as_json", is_flag=True, help="Print the final figures as JSON.")
@click.option("--no-dashboard", is_flag=True,
              help="No live dashboard: announce the phases only (for CI).")
@click.option("--no-mysql", is_flag=True, help="Leave MariaDB out even when it is installed.")
@click.option("--no-prometheus", is_flag=True, help="Do not start Prometheus.")
def demo(duration: float, keep: bool, as_json: bool, no_dashboard: bool, no_mysql: bool,
         no_prometheus: bool) -> None:
    """Both databases behind Envoy with both filters, a workload in phases, a live dashboard."""
    from .demo import DemoRun
    from .demo_report import render_summary
    from .harness.lifecycle import _stop_on, _wait
    from .top import Top, run_live, run_plain

    live = not (no_dashboard or as_json) and sys.stdout.isatty()
    out = Console(highlight=False, stderr=as_json,
                  width=None if sys.stdout.isatty() or as_json else 120)
    showing = threading.Event()  # the dashboard's footer shows the phase instead

    def step(msg: str) -> None:
        if not showing.is_set():
            out.print(f"[bold cyan]>[/] {msg}")

    run = DemoRun(duration=duration, with_mysql=False if no_mysql else None,
                  with_prometheus=False if no_prometheus else None, step=step)
    try:
        run.start()
        lab = run.lab
        assert lab is not None
        if lab.prometheus is not None:
            out.print(f"[bold cyan]>[/] Prometheus: {lab.prometheus.url} "
                      "(scrapes Envoy every second)")
        thread = run.run_in_background()
        dash = Top(lab.stats, window=15.0, envoy_log=getattr(lab.envoy, "log_path", None),
                   phase=run.phase)
        if live:
            showing.set()
            if run_live(dash, Console(highlight=False), stop=run.stop):
                run.stop.set()
            showing.clear()
        elif not (no_dashboard or as_json):
            run_plain(dash, lambda line: out.print(line, markup=False, soft_wrap=True),
                      interval=5.0, stop=run.stop)
        else:
            run.stop.wait()
        run.finish(thread)
        figures = run.figures(run.settled_snapshot())
        if as_json:
            click.echo(json.dumps(figures, indent=2))
        else:
            Console(highlight=False, width=None if sys.stdout.isatty() else 120).print(
                render_summary(figures))
        if keep:
            stop = _stop_on()
            for label, value in lab.connection_strings():
                out.print(f"  {label:18} {value}")
            out.print("lab is up; Ctrl-C stops it")
            _wait(stop)
    finally:
        run.close()


# --- compose ---------------------------------------------------------------
@main.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def compose(directory: Path) -> None:
    """Write a Docker Compose project of the demo stack into DIRECTORY.

    Envoy with the shipped filters, PostgreSQL 18, MySQL 8.4, Prometheus and
    Grafana with the wirelab dashboard; start it with `docker compose up`.
    """
    from .compose import write_compose

    path = write_compose(directory)
    click.echo(f"wrote {path}")
    click.echo(f"start it: docker compose -f {path} up   (Grafana: http://127.0.0.1:3000, "
               "Prometheus: http://127.0.0.1:9090; credentials in connect.json)")


# --- truth -----------------------------------------------------------------
@main.command()
@click.option("--postgres", is_flag=True, help="PostgreSQL drivers (default: both servers).")
@click.option("--mysql", is_flag=True, help="MySQL/MariaDB drivers (default: both servers).")
@click.option("--pg-bin", type=click.Path(file_okay=False, path_type=Path),
              help="bin/ of the PostgreSQL to test against (default: the one wirelab finds).")
@click.option("--driver", "drivers", multiple=True, help="Only this workload (repeatable).")
@click.option("--no-lua", is_flag=True, help="Leave out the Lua example that counts statements.")
@click.option("--json", "as_json", is_flag=True, help="Print the cells as JSON.")
def truth(postgres: bool, mysql: bool, pg_bin: Path | None, drivers: tuple[str, ...],
          no_lua: bool, as_json: bool) -> None:
    """Run each driver through Envoy; print filter vs server figures; exit 1 on a difference."""
    from .truth.command import truth_command

    sys.exit(truth_command(postgres, mysql, drivers, pg_bin, not no_lua, as_json,
                           stdout_console(), console))


# --- replay ----------------------------------------------------------------
@main.command()
@click.argument("filter_path", metavar="FILTER", type=click.Path(exists=True, path_type=Path))
@click.argument("conversation", metavar="FILE", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--chunking", type=click.Choice(["recorded", "1", "random", "coalesced"]),
              default="recorded", show_default=True, help="How to split the bytes into reads.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed for --chunking random.")
@click.option("--config", "plugin_config", help="Plugin configuration (JSON); default: [config].")
@click.option("--json", "as_json", is_flag=True, help="Print metrics and logs as JSON.")
def replay(filter_path: Path, conversation: Path, chunking: str, seed: int,
           plugin_config: str | None, as_json: bool) -> None:
    """Run a recorded conversation FILE through FILTER (a project dir or a .wasm)."""
    from .replay import replay as run_replay

    wasm, default_config = _replay_filter(filter_path)
    result = run_replay(wasm, conversation, chunking=chunking, seed=seed,
                        plugin_config=plugin_config if plugin_config is not None
                        else default_config)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=2))
        return
    from rich.table import Table

    data = result.as_dict()
    table = Table("metric", "type", "value")
    for kind in ("counters", "gauges"):
        for name, value in data[kind].items():
            table.add_row(name, kind[:-1], str(value))
    for name, h in data["histograms"].items():
        table.add_row(name, "histogram", f"count={h['count']} sum={h['sum']}")
    Console().print(table)
    console.print(f"{result.connections} connection(s), {result.bytes:,} bytes in "
                  f"{result.reads} reads, {len(result.logs)} log lines")
    for level, message in result.logs:
        if level in ("error", "critical"):
            click.echo(f"filter {level}: {message}", err=True)
    for trap in result.traps:
        console.print(f"[red]trap:[/red] {trap}")


def _replay_filter(path: Path) -> tuple[Path, object]:
    if path.is_dir():
        from .build import build_project
        from .harness.filters import plugin_config_for
        from .project import Project

        project = Project.load(path)
        built = build_project(project)
        # what Envoy gets: a Lua project's config carries its script
        return built.wasm, plugin_config_for(project)
    if path.suffix != ".wasm":
        raise WirelabError(f"{path}: FILTER must be a project directory or a .wasm file")
    return path, None


# --- new -------------------------------------------------------------------
@main.command()
@click.argument("name")
@click.option("--lang", default="c", show_default=True, help="c or lua.")
@click.option("--protocol", default="tcp", show_default=True, help="postgres, mysql or tcp.")
@click.option("--dir", "parent", default=".", show_default=True,
              type=click.Path(path_type=Path), help="Create the project in this directory.")
def new(name: str, lang: str, protocol: str, parent: Path) -> None:
    """Create a filter project NAME that builds and passes its tests as generated."""
    from .scaffold import create_project

    root = create_project(name, lang=lang, protocol=protocol, parent=parent)
    click.echo(f"created {root} ({lang}, {protocol})")
    click.echo(f"next: cd {root} && wirelab build && wirelab test   (--e2e: real Envoy)")


# --- test ------------------------------------------------------------------
class _PytestArgsCommand(click.Command):
    """Keeps everything after `--` for pytest, whatever it looks like."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            cut = args.index("--")
            ctx.meta["wirelab.pytest_args"] = args[cut + 1:]
            args = args[:cut]
        return super().parse_args(ctx, args)

    def collect_usage_pieces(self, ctx: click.Context) -> list[str]:
        return [*super().collect_usage_pieces(ctx), "[-- PYTEST_ARGS...]"]


@main.command(cls=_PytestArgsCommand)
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--e2e", is_flag=True, help="Also run tests marked e2e (real Envoy and servers).")
@click.option("--target", type=click.Choice(["wasm", "native", "all"]), default="wasm",
              show_default=True,
              help="What the e2e labs run (wirelab_lab's default target); `all`: the e2e tests "
                   "once per target. The emulator's unit tests always run the Wasm build.")
@click.pass_context
def test(ctx: click.Context, directory: Path, e2e: bool, target: str) -> None:
    """Build the project in DIRECTORY, then run its tests (pytest; args after -- go to it)."""
    import os

    from .testing.runner import run_tests

    if target != "wasm" and not e2e:
        raise click.UsageError(f"--target {target} needs --e2e: the emulator runs Wasm only")
    targets = ["wasm", "native"] if target == "all" else [target]
    args = ctx.meta.get("wirelab.pytest_args", [])
    code = 0
    for i, current in enumerate(targets):
        os.environ["WIRELAB_TARGET"] = current
        if len(targets) > 1:
            click.echo(f"== e2e tests, target {current} ==", err=True)
        # the emulator's unit tests once; the e2e tests once per target
        rc = run_tests(directory, e2e=e2e, pytest_args=args if i == 0 else ["-m", "e2e", *args],
                       report=lambda line: click.echo(line, err=True), target=current)
        code = code or rc
    sys.exit(code)


# --- xds / fleet (wirelab.cli_xds) -------------------------------------------
def _register_xds() -> None:
    from .cli_xds import fleet, xds

    main.add_command(xds)
    main.add_command(fleet)


_register_xds()
