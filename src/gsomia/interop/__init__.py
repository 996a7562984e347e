"""Interoperability mappings, pure: STIX 2.1 objects and Cursor-on-Target events to and from
gsomia's reports and national markings (docs/design.md §6, docs/interop.md).

Nothing here does I/O or reads a clock: instants come in as parameters. The party node's TAXII
server and CoT bridge (``gsomia.node.taxii``, ``gsomia.node.cot``) are built on these values.
"""
