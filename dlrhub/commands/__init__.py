"""The `dlrhub` subcommands, one module per area; `dlrhub/cli.py` builds the parser."""
