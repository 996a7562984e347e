"""gsomia: an exchange for classified military information governed by security agreements."""

__version__ = "0.1.0"
