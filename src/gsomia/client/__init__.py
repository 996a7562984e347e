"""The exchange's HTTP client, for the CLI and the party node."""
