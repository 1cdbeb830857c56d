"""Building: a day's raw file into the lake's Parquet tables. The Arrow side.

Runs in the build worker (``sync.worker``), a child process, so that the process that reads hoop
never loads Arrow. ``flatten`` is where a session becomes rows of the contract tables; ``schema``
is the data contract in code; ``lake`` writes a day's files; ``day`` builds one day. ``result``
(what a build returns) is the one module here without Arrow: the reading process unpickles it.
"""
