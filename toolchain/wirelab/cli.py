"""The `wirelab` command line. Thin: parse, call one module, print."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console

from .errors import WirelabError

console = Console(stderr=True, highlight=False)


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
def build(directory: Path, as_json: bool, force: bool) -> None:
    """Compile the filter project in DIRECTORY to build/<name>.wasm."""
    from .build import build_project
    from .project import Project

    result = build_project(Project.load(directory), force=force)
    for warning in getattr(result, "warnings", ()):
        click.echo(f"wirelab: warning: {warning}", err=True)
    if as_json:
        click.echo(json.dumps(result.as_dict()))
    else:
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
    """Relay clients to a server and record the traffic until Ctrl-C."""
    import time

    from .record import Recorder, parse_hostport

    rec = Recorder(parse_hostport(listen), parse_hostport(upstream), out=out, protocol=protocol)
    rec.start()
    console.print(f"recording {rec.host}:{rec.port} -> {upstream} into {out} (Ctrl-C to stop)")
    last = None
    try:
        while True:
            s = rec.stats
            now = (s.connections, s.active, s.client_bytes, s.server_bytes)
            if now != last:
                console.print(
                    f"connections {s.connections} (open {s.active}), client→server "
                    f"{s.client_bytes:,} B, server→client {s.server_bytes:,} B"
                )
                last = now
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    conv = rec.stop()
    console.print(f"wrote {out}: {len(conv.connections)} connection(s), {len(conv.events)} events")
