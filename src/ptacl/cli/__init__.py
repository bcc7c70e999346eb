"""Command-line entry points. Each module here with a `main(argv=None)` is a `ptacl` subcommand."""
