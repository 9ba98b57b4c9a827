"""The `u2ad` command line: one module per subcommand."""
