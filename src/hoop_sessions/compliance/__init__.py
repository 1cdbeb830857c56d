"""Compliance: the rules in ``sql/compliance`` (``rules``) and the evidence report (``report``)."""
