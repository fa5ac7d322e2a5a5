"""The minimal bootstrap for an Envoy that reads an export directory."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from ..envoy.render import _env, tag_rules
from ..errors import WirelabError
from .resources import BLOB_CLUSTER, CDS_FILE, LDS_FILE


def render_xds_bootstrap(root: str | Path, admin_port: int = 9901, *, node_id: str = "wirelab",
                         node_cluster: str = "wirelab", blob_origin: str | None = None,
                         stats_flush_interval_ms: int = 200) -> str:
    """YAML that `envoy -c` runs as is: LDS and CDS from `root`, admin on loopback.

    `root` is where the export is on the Envoy host (the path the export was
    written for); `blob_origin` adds the cluster remote code is fetched through.
    """
    root = Path(root).absolute()
    host = port = None
    if blob_origin:
        parts = urlsplit(blob_origin)
        if parts.scheme != "http" or not parts.hostname:
            raise WirelabError(f"blob origin {blob_origin!r} is not an http://HOST[:PORT] URL")
        host, port = parts.hostname, parts.port or 80
    return _env().get_template("xds-bootstrap.yaml.j2").render(
        root=str(root), lds_path=str(root / LDS_FILE), cds_path=str(root / CDS_FILE),
        node_id=node_id, node_cluster=node_cluster, admin_address="127.0.0.1",
        admin_port=int(admin_port), flush_interval=f"{stats_flush_interval_ms / 1000:g}s",
        tag_rules=tag_rules(), blob_origin=blob_origin, blob_cluster=BLOB_CLUSTER,
        blob_host=host, blob_port=port,
    )
