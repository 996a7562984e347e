"""The party node's Cursor-on-Target bridge: CoT in from the party's sensors and TAK servers
(TCP and UDP, XML or TAK protocol v1) as signed reports; received missile tracks out as CoT,
marked per MIL-STD-6090, to the endpoints their marking allows (docs/interop.md §5)."""
