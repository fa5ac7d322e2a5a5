"""Workloads written in the driver's own language: Node.js scripts and Java classes.

Node drivers are pinned in drivers/node/package-lock.json and installed with
`npm ci` beside it (scripts/install-system-deps.sh does that). Java drivers are
Debian's jars; the classes are compiled with javac on first use into the user
cache, keyed by the source's hash.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

from ...paths import cache_dir
from .base import Observed, Target, run_json

DRIVERS = Path(__file__).resolve().parents[1] / "drivers"
NODE_DIR = DRIVERS / "node"
JAVA_DIR = DRIVERS / "java"

# Debian's jar names (/usr/share/java), the package that ships each
JARS = {
    "pgjdbc": ("postgresql.jar", "libpostgresql-jdbc-java"),
    "mariadb-java": ("mariadb-java-client.jar", "libmariadb-java"),
}


def _params(t: Target) -> str:
    return json.dumps({"host": t.host, "port": t.port, "user": t.user,
                       "password": t.password, "database": t.database})


def node_modules() -> Path:
    return Path(os.environ.get("WIRELAB_NODE_MODULES", NODE_DIR / "node_modules"))


def node_missing(package: str) -> str | None:
    if shutil.which("node") is None:
        return "node is absent: apt-get install nodejs npm"
    if not (node_modules() / package / "package.json").is_file():
        return (f"the npm package {package} is absent: npm ci --prefix {NODE_DIR} "
                "(or bash scripts/install-system-deps.sh)")
    return None


def node_run(script: str, t: Target) -> Observed:
    env = {**os.environ, "NODE_PATH": str(node_modules())}
    return run_json(["node", str(NODE_DIR / script), _params(t)], env=env)


def jar(driver: str) -> Path | None:
    name, _ = JARS[driver]
    override = os.environ.get(f"WIRELAB_{driver.upper().replace('-', '_')}_JAR")
    path = Path(override) if override else Path("/usr/share/java") / name
    return path if path.is_file() else None


def java_missing(driver: str) -> str | None:
    if shutil.which("java") is None or shutil.which("javac") is None:
        return "java/javac are absent: apt-get install openjdk-17-jdk-headless"
    if jar(driver) is None:
        name, package = JARS[driver]
        return f"/usr/share/java/{name} is absent: apt-get install {package}"
    return None


def _compiled(source: Path, classpath: str) -> Path:
    digest = hashlib.sha256(source.read_bytes() + classpath.encode()).hexdigest()[:16]
    out = cache_dir() / "truth-java" / f"{source.stem}-{digest}"
    if not (out / f"{source.stem}.class").is_file():
        out.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(["javac", "-cp", classpath, "-d", str(out), str(source)],
                              capture_output=True, text=True, timeout=180)
        if proc.returncode != 0:
            raise RuntimeError(f"javac {source.name} failed: {proc.stderr.strip()[-1500:]}")
    return out


def java_run(driver: str, main_class: str, t: Target) -> Observed:
    driver_jar = str(jar(driver))
    classes = _compiled(JAVA_DIR / f"{main_class}.java", driver_jar)
    return run_json(["java", "-cp", f"{classes}{os.pathsep}{driver_jar}", main_class,
                     t.host, str(t.port), t.user, t.password, t.database])
