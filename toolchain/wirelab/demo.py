"""`wirelab demo`: real clients through a real Envoy with the shipped filters, then the stats.

It builds the filters that ship with wirelab, starts PostgreSQL (and MariaDB when
installed), runs psql and pgbench (and the mariadb CLI) through Envoy, and prints
what the filters counted. Nothing here is simulated.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

from .errors import WirelabError
from .harness import Lab
from .paths import examples_dir, filters_dir

PSQL_SCRIPT = """
CREATE TABLE IF NOT EXISTS demo_orders (id serial PRIMARY KEY, item text, qty int);
INSERT INTO demo_orders (item, qty) VALUES ('widget', 3), ('gadget', 5), ('gizmo', 1);
SELECT item, qty FROM demo_orders ORDER BY id;
BEGIN;
UPDATE demo_orders SET qty = qty + 1 WHERE item = 'widget';
COMMIT;
BEGIN;
DELETE FROM demo_orders WHERE item = 'gizmo';
ROLLBACK;
SELECT * FROM no_such_table;
SELECT count(*) FROM demo_orders;
"""

MARIADB_SCRIPT = """
CREATE TABLE IF NOT EXISTS demo_orders (id int AUTO_INCREMENT PRIMARY KEY, item text, qty int);
INSERT INTO demo_orders (item, qty) VALUES ('widget', 3), ('gadget', 5);
SELECT item, qty FROM demo_orders ORDER BY id;
BEGIN; UPDATE demo_orders SET qty = qty + 1 WHERE item = 'widget'; COMMIT;
SELECT * FROM no_such_table;
"""


def demo_filters() -> list[Path]:
    """The byte counter example plus whichever shipped protocol filters exist."""
    found = [examples_dir() / "bytes-counter"]
    for name in ("postgres", "mysql"):
        project = filters_dir() / name
        if (project / "wirelab.toml").is_file():
            found.append(project)
    return found


def _run(cmd: list[str], env: dict[str, str] | None, stdin: str | None = None) -> str:
    proc = subprocess.run(cmd, env=env, input=stdin, capture_output=True, text=True, timeout=300)
    # The demo's scripts contain one deliberate error; anything else is a real failure.
    if proc.returncode not in (0, 1, 3):
        raise WirelabError(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr.strip()[:400]}")
    return proc.stdout


def run_demo(step: Callable[[str], None], with_mysql: bool | None = None) -> Lab:
    """Run the demo traffic and return the (still running) lab; the caller closes it."""
    for tool in ("psql", "pgbench"):
        if shutil.which(tool) is None:
            raise WirelabError(f"{tool} is not installed: apt-get install postgresql-client")
    if with_mysql is None:
        with_mysql = shutil.which("mariadbd") is not None or Path("/usr/sbin/mariadbd").exists()
    step("building filters and starting PostgreSQL" + (", MariaDB" if with_mysql else "")
         + " and Envoy")
    lab = Lab(postgres=True, mysql=with_mysql, filters=demo_filters(),
              filter_config={"stat_prefix": "demo"}).start()
    try:
        env = lab.pg_env()
        step("psql through Envoy: a table, inserts, selects, a commit, a rollback, an error")
        _run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=0", "-f", "-"], env, PSQL_SCRIPT)
        step("pgbench through Envoy: initialise, then 200 transactions on 4 clients")
        _run(["pgbench", "-i", "-q", "-s", "1"], env)
        _run(["pgbench", "-n", "-c", "4", "-j", "2", "-t", "50"], env)
        if with_mysql:
            step("mariadb CLI through Envoy: a table, inserts, a select, a commit, an error")
            _run(["mariadb", *lab.mysql_cli_args(), "--force"], None, MARIADB_SCRIPT)
    except BaseException:
        lab.close()
        raise
    return lab
