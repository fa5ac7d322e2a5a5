"""The driver matrix: real drivers through Envoy and the shipped filters, every figure
compared with the server's own statistics (pg_stat_statements / pg_stat_database,
SHOW GLOBAL STATUS), and a driver x figure grid of the result."""

from .matrix import Cell, Figure, LuaCounter, ProtocolLab, Run
from .workloads import WORKLOADS, Workload, by_name

__all__ = ["WORKLOADS", "Cell", "Figure", "LuaCounter", "ProtocolLab", "Run", "Workload",
           "by_name"]
