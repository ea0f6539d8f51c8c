"""One module per `sitevigil` subcommand."""
