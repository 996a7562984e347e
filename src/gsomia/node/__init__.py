"""The party node: a nation's own gsomia process (docs/design.md §6)."""
