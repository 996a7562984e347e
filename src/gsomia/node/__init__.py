"""The party node: a party's own gsomia, inside its own network (docs/design.md §6, docs/node.md).

It holds the party's private keys and the plaintext of what the party receives, in a
SQLCipher-encrypted store; signs what the party sends; follows the party's inbox on the
exchange, decrypts and verifies every delivery (originator signature with the key valid at
submission, ledger inclusion against a checkpoint it checked for consistency itself);
witnesses the exchange's ledger (C2SP tlog-cosignature) and raises an alarm on a fork or a
rollback; and serves the party's officers a JSON API and a web console. It talks to the
exchange only over HTTP, through :mod:`gsomia.client`.
"""
