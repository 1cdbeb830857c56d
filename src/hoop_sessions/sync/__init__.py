"""Running days: what to read, and each day through extract, build and load.

- ``plan``: the decision of which days a run reads and which are listed again, and why.
- ``ledger``: what has been read from hoop and loaded; the plan's memory.
- ``run``: sync a day, a range, or the nightly set (what the CLI and Dagster call).
- ``day``: the CPU half of a day, build then load, run by ``worker`` in a child process.
- ``stages``: which days each stage of a staged (Dagster) run does.
- ``mirror``: the local working directory and the object store behind it.
- ``ingest``: records that did not come over HTTP, through the same path.
"""
