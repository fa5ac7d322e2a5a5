"""Local database servers for tests and demos: PostgreSQL and MariaDB.

Each server is a context manager that owns its whole life: a temp directory, a
free loopback port, known credentials, TLS material, a log, and a process group
that is gone when the `with` block ends (or the interpreter exits or is
terminated).
"""

from .docker_backend import ContainerSpec, DockerBackend
from .errors import ServerError
from .mariadb import MariaDBServer
from .postgres import PostgresServer

__all__ = ["ContainerSpec", "DockerBackend", "MariaDBServer", "PostgresServer", "ServerError"]
