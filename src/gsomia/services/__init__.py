"""Use cases, one package per feature, each of the same shape (use-case modules and one
``presenters`` module that owns the JSON shapes):

- :mod:`gsomia.services.exchange`: submissions, relays, deliveries and the inbox, incidents,
  operator events, identity and access;
- :mod:`gsomia.services.ledger`: the exchange's tamper-evident log as a service;
- :mod:`gsomia.services.analysis`: the record, what-ifs, coverage, gaps and the impact report.

The exchange may use analysis (it decides on the compiled record); analysis and the ledger
never import the exchange. :mod:`gsomia.bootstrap` wires them together.
"""
