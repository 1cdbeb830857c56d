"""Reading hoop: list a closed UTC day, get each session, keep the raw bodies.

Runs in the process that talks to the gateway, which streams bodies of 100 MiB and more on a
small memory budget. Nothing in this package imports Arrow, pandas, Dagster or another stage
(the import contracts in ``pyproject.toml``, checked by ``make lint``).

- ``transport``: keep-alive connections, retries, request priority.
- ``client``: the API calls (userinfo, one list page, one session).
- ``windows``: the time windows a day is listed in; ``listing``: where a day is listed.
- ``ordered``: the bounded, in-order async map that gets and days run through.
- ``day``: get a day's sessions and write its raw file (``extract_day``).
- ``raw``: the raw file; its header (``RawHeader``) is the contract with the build stage.
- ``finality``: when a record can no longer change; ``principal``: who the token is.
- ``values``, ``events``, ``protect``: record values, event streams and ``HOOP_STORE_OUTPUT``.
"""
