"""Option types both command groups share."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import click


class _Day(click.DateTime):
    """A UTC day typed YYYY-MM-DD: click parses it, this returns the date."""

    name = "day"

    def __init__(self) -> None:
        super().__init__(formats=["%Y-%m-%d"])

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        try:
            return super().convert(value, param, ctx).date()
        except click.BadParameter:
            self.fail(f"{value!r} is not a date YYYY-MM-DD", param, ctx)


DAY = _Day()
