"""hoop-sessions: copy hoop.dev session records into a Parquet lake and a DuckDB warehouse."""

__version__ = "0.1.0"
