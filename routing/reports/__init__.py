"""Reports: conversation, SLA, CSAT and bot figures over a period (docs/reports.md).

`periods` turns dates into local days and buckets, `scope` decides who may see what, `sql`
holds the expressions that differ between SQLite and PostgreSQL, `figures` counts and measures,
`tables` lays the figures out as the named reports. Read-only: nothing here writes.
"""

from routing.reports.figures import FIGURES, Dimension, figures, figures_by
from routing.reports.periods import EARLIEST, LATEST, MAX_DAYS, WEEKDAYS, Group, Period
from routing.reports.scope import Forbidden, Scope, scope_for
from routing.reports.tables import (
    REPORTS,
    Table,
    busiest_hours,
    csat_ratings,
    every_report,
    report,
)

__all__ = [
    "EARLIEST",
    "FIGURES",
    "LATEST",
    "MAX_DAYS",
    "REPORTS",
    "WEEKDAYS",
    "Dimension",
    "Forbidden",
    "Group",
    "Period",
    "Scope",
    "Table",
    "busiest_hours",
    "csat_ratings",
    "every_report",
    "figures",
    "figures_by",
    "report",
    "scope_for",
]
