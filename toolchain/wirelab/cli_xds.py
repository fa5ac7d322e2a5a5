"""`wirelab xds ...` and `wirelab fleet ...`: thin commands over wirelab.xds and wirelab.fleet."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from .errors import WirelabError

console = Console(stderr=True, highlight=False)


@click.group()
def xds() -> None:
    """Export filters as xDS files (LDS/CDS/ECDS) for Envoys that watch a directory."""


@xds.command("export")
@click.argument("targets", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The export directory (Envoys watch it; new exports switch in by rename).")
@click.option("--upstream", metavar="HOST:PORT", help="The database server (project form).")
@click.option("--listen", type=int, help="Listener port (project form; default 1xxxx).")
@click.option("--name", "listener_name", default="db", show_default=True,
              help="Listener name (project form).")
@click.option("--root", type=click.Path(path_type=Path),
              help="Where Envoys see the directory, if not at --out (a synced copy).")
@click.option("--code", type=click.Choice(["local", "remote"]), default=None,
              help="Code by path in the directory (local) or by HTTP URI + sha256 (remote).")
@click.option("--blob-origin", metavar="URL", help="HTTP origin serving the directory (remote).")
@click.option("--no-validate", is_flag=True,
              help="Publish without the emulator and Envoy checks (Envoy may then reject it).")
@click.option("--format", "fmt", type=click.Choice(["xds", "istio"]), default="xds",
              show_default=True, help="istio: WasmPlugin resources instead of xDS files.")
@click.option("--namespace", default="default", show_default=True,
              help="istio: the WasmPlugins' namespace.")
@click.option("--selector", multiple=True, metavar="KEY=VALUE",
              help="istio: workload label the plugins apply to; repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def xds_export(targets: tuple[Path, ...], out: Path, upstream: str | None, listen: int | None,
               listener_name: str, root: Path | None, code: str | None,
               blob_origin: str | None, no_validate: bool, fmt: str, namespace: str,
               selector: tuple[str, ...], as_json: bool) -> None:
    """Build, check and publish TARGETS (project dirs, or one FLEET.toml) into --out."""
    from .xds import export, load_fleet, simple_fleet

    if len(targets) == 1 and targets[0].suffix == ".toml":
        if upstream or listen:
            raise WirelabError("--upstream/--listen are for project directories; "
                               "a fleet file names its own listeners")
        spec = load_fleet(targets[0])
        spec = dataclasses.replace(spec, code=code or spec.code,
                                   blob_origin=blob_origin or spec.blob_origin)
    else:
        if not upstream:
            raise WirelabError("say where the database is: --upstream HOST:PORT "
                               "(or export a FLEET.toml)")
        spec = simple_fleet(list(targets), upstream, listen, listener_name, code or "local",
                            blob_origin)
    if fmt == "istio":
        from .xds.istio import export_istio

        labels = {}
        for item in selector:
            key, sep, value = item.partition("=")
            if not sep or not key:
                raise WirelabError(f"--selector {item!r} is not KEY=VALUE")
            labels[key] = value
        written = export_istio(spec, out, blob_origin, namespace, labels or None)
        for path in written:
            click.echo(f"wrote {path}")
        return
    result = export(spec, out, root=root, validate=not no_validate)
    for warning in result.warnings:
        click.echo(f"wirelab: warning: {warning}", err=True)
    if as_json:
        click.echo(json.dumps(result.as_dict()))
        return
    click.echo(f"published {result.root} version {result.version} ({result.seconds:.2f} s)")
    for name, version in result.filters.items():
        mark = "new" if name in result.changed else "unchanged"
        click.echo(f"  {name:28} {version}  {mark}")


@xds.command("bootstrap")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--admin-port", type=int, default=9901, show_default=True)
@click.option("--node-id", default="wirelab", show_default=True,
              help="This Envoy's name (fleet status shows it).")
@click.option("--blob-origin", metavar="URL",
              help="HTTP origin of the blobs (default: the one the export names).")
def xds_bootstrap(directory: Path, admin_port: int, node_id: str,
                  blob_origin: str | None) -> None:
    """Print the minimal Envoy bootstrap that reads the export in DIRECTORY."""
    from .xds import published_manifest, render_xds_bootstrap

    manifest = published_manifest(directory)
    if manifest is None:
        raise WirelabError(f"{directory} holds no published export: run `wirelab xds export` "
                           "first (or point at the synced copy)")
    origin = blob_origin or manifest.get("blob_origin")
    click.echo(render_xds_bootstrap(directory, admin_port, node_id=node_id, blob_origin=origin),
               nl=False)


@click.group()
def fleet() -> None:
    """Run several Envoys that share one export, and see what each one runs."""


@fleet.command("up")
@click.argument("n", type=int)
@click.option("--dir", "root", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The export directory the Envoys share.")
@click.option("--filter", "filters", multiple=True, type=click.Path(exists=True, path_type=Path),
              help="A filter project directory or .wasm; repeatable.")
@click.option("--postgres", is_flag=True, help="Start PostgreSQL (default: both servers).")
@click.option("--mysql", is_flag=True, help="Start MariaDB (default: both servers).")
@click.option("--state", type=click.Path(dir_okay=False, path_type=Path),
              default=Path(".wirelab-fleet.json"), show_default=True,
              help="Where to write the Envoys' admin URLs for `fleet status`.")
@click.option("--fleet-file", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("fleet.toml"), show_default=True,
              help="Where to write the fleet's listeners and filters, to edit and export.")
def fleet_up(n: int, root: Path, filters: tuple[Path, ...], postgres: bool, mysql: bool,
             state: Path, fleet_file: Path) -> None:
    """Start servers and N Envoys reading the export in --dir; stay up until Ctrl-C."""
    from .fleet import Fleet
    from .harness.lifecycle import _stop_on, _wait
    from .harness.state import write_state

    if not (postgres or mysql):
        postgres = mysql = True
    console.print(f"starting servers and {n} Envoy(s) ...")
    with Fleet(n, root=root, postgres=postgres, mysql=mysql, filters=list(filters)) as fl:
        info = fl.state()
        fleet_file.write_text(fl.fleet_file(list(filters)))
        info["fleet_file"] = str(fleet_file.absolute())
        stop = _stop_on()
        write_state(state, info)
        out = Console(highlight=False)
        out.print(f"[bold]fleet of {n} is up[/] (Ctrl-C stops it); state in {state}")
        for kind, s in info["servers"].items():
            out.print(f"  {kind:10} 127.0.0.1:{s['port']} (every Envoy), direct {s['direct_port']}")
        for e in info["envoys"]:
            out.print(f"  {e['node']:10} admin {e['admin']}")
        out.print(f"publish a new version: edit {fleet_file} or the filters, then")
        out.print(f"  wirelab xds export {fleet_file} --out {fl.root}")
        out.print(f"  wirelab fleet status --state {state}")
        try:
            _wait(stop)
        finally:
            state.unlink(missing_ok=True)


@fleet.command("status")
@click.option("--state", type=click.Path(dir_okay=False, path_type=Path),
              default=Path(".wirelab-fleet.json"), show_default=True)
@click.option("--json", "as_json", is_flag=True)
def fleet_status_cmd(state: Path, as_json: bool) -> None:
    """Per Envoy and filter: the version running, the one published, accepted or rejected."""
    from .fleet import fleet_status
    from .harness.state import read_state

    info = read_state(state)
    rows = fleet_status(info["root"], [(e["node"], e["admin"]) for e in info["envoys"]])
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in rows], indent=2))
    else:
        table = Table("envoy", "filter", "running", "published", "last update", "ok/rejected",
                      "detail")
        for r in rows:
            style = {"accepted": "green", "rejected": "red"}.get(r.last, "yellow")
            running = f"{r.running} (export {r.export})" if r.export else (r.running or "-")
            table.add_row(r.envoy, r.filter, running, r.published or "-",
                          f"[{style}]{r.last}[/]", f"{r.accepted}/{r.rejected}", r.detail[:60])
        Console(highlight=False, width=None if sys.stdout.isatty() else 160).print(table)
    sys.exit(0 if all(r.last == "accepted" for r in rows) else 3)


def run_watch(lab_kwargs: dict, report) -> None:
    """`wirelab up --watch`: a lab whose Envoy reads an export; a saved source republishes."""
    from .harness import Lab
    from .harness.lifecycle import _stop_on, _wait
    from .xds.watch import Watcher

    if lab_kwargs.get("backend", "local") != "local":
        raise WirelabError("--watch runs the local backend: drop --backend docker")
    with Lab(**{**lab_kwargs, "xds": True}) as lab:
        def publish() -> tuple[str, list[str]]:
            result = lab.republish()
            return result.version, result.changed

        stop = _stop_on()
        watcher = Watcher(lab.filter_targets, publish, report).start()
        out = Console(highlight=False)
        out.print("[bold]wirelab lab is up[/], watching the filters' sources (Ctrl-C stops it)")
        for label, value in lab.connection_strings():
            out.print(f"  {label:18} {value}")
        out.print(f"  {'export':18} {lab.envoy.root}")
        try:
            _wait(stop)
        finally:
            watcher.stop()


def report_change(change) -> None:
    """One line per save: what was published and how long it took, or why not."""
    files = ", ".join(Path(f).name for f in change.files)
    if change.error:
        console.print(f"[red]not published[/] ({files}): {change.error}")
        console.print("  Envoy keeps the previous version")
    else:
        names = ", ".join(change.changed) or "no filter changed"
        console.print(f"published version {change.version} ({files} -> {names}) "
                      f"in {change.seconds:.2f} s")


@xds.command("pull")
@click.argument("origin", metavar="URL")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def xds_pull(origin: str, directory: Path) -> None:
    """Copy the export URL publishes into DIRECTORY (hash-checked) and switch it in."""
    from .xds.pull import pull

    result = pull(origin, directory)
    if result.switched:
        click.echo(f"switched {directory} to version {result.version} "
                   f"({result.blobs} blob(s) downloaded)")
    else:
        click.echo(f"{directory} is already at version {result.version}")
