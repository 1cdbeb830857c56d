"""The ``hoop-sessions`` command (``main``) and its analyst commands, the demo and ``make dev``."""
