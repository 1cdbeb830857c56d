"""Building: a day's raw file into the lake's Parquet tables. The Arrow side.

Runs in the build worker (``sync.worker``), a child process, so that the reading process never
loads Arrow. ``flatten`` turns one session into rows of the contract tables; ``schema`` is the
data contract in code; ``lake`` writes a day's files; ``day`` builds one day.
"""
