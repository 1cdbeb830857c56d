"""The DuckDB warehouse: loading a day, the analysts' published snapshot, and what is checked.

- ``load``: DDL from the contract, one transaction per day, the analyst views.
- ``snapshot``: the writer's copy and the published file; ``published``: how a reader opens it.
- ``manifest``: tamper evidence, one manifest per day chained by day.
- ``checks``, ``summaries``: the queries behind the Dagster checks and metadata.
- ``ddl``: the lake's tables for other engines.
"""
