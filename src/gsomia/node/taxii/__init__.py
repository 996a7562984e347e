"""The party node's TAXII 2.1 server (OASIS Standard, 10 June 2021): STIX 2.1 in and out,
national markings carried (docs/interop.md)."""
