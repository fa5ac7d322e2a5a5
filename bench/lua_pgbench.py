"""pgbench -S through Envoy: tcp_proxy alone vs + the pg-statements Lua filter.

    .venv/bin/python bench/lua_pgbench.py                      # simple and prepared
    .venv/bin/python bench/lua_pgbench.py --mode prepared --runs 7 --seconds 5 --pin

bench/postgres_pgbench.py with the Lua runtime's pg-statements example as the
filter (`--filter` picks another) and issue 7's target, ratio >= 0.90. Every
option of postgres_pgbench.py applies. The cost per delivered message is the
filtered Envoy's added CPU per transaction (printed per run) minus the Wasm
floor (`--filter probe:2`), divided by the messages the script receives per
transaction; filters/lua/API.md has the measured numbers.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from postgres_pgbench import main  # noqa: E402

from wirelab.paths import examples_dir  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(default_filter=examples_dir() / "lua" / "pg-statements", target=0.90))
