"""`python -m studio` = the `studio` command."""
from studio.cli import entry

entry()
