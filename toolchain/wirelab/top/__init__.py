"""`wirelab top`: a live dashboard of the filters' stats (see app.py)."""

from .app import Top, client_from_state, last_slow_statement, run_live, run_plain
from .model import GroupView, Window, quantile, reduce
from .render import Status, dashboard, plain_lines

__all__ = ["GroupView", "Status", "Top", "Window", "client_from_state", "dashboard",
           "last_slow_statement", "plain_lines", "quantile", "reduce", "run_live", "run_plain"]
