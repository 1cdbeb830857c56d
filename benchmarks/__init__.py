"""Benchmarks of hoop-sessions: the sync side by side with a fetch-only floor and with dlt.

``python -m benchmarks.run`` (``make bench``) runs them; see ``benchmarks/README.md``.
"""
