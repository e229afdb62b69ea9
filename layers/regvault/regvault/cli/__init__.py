"""The `regvault` command: the parser, common options and progress, one module per command."""
