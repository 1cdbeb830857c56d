"""Reading hoop: list a closed UTC day, get each session, keep the raw bodies.

Runs in the process that talks to the gateway, which streams bodies of 100 MiB and more on a
small memory budget. Nothing in this package imports Arrow, pandas or Dagster, and nothing here
imports another stage: ``pyproject.toml`` states it as an import contract (``make lint``).

- ``transport``: keep-alive connections, retries, request priority.
- ``client``: the API calls (userinfo, one list page, one session).
- ``windows``: the time windows a day is listed in.
- ``day``: list a day, get its sessions, write its raw file (``extract_day``).
- ``raw``: the raw file (its header is the contract with the build stage).
- ``values``, ``events``, ``protect``: record values, event streams and ``HOOP_STORE_OUTPUT``.
"""
