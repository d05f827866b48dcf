"""``python -m tagsure`` runs the CLI."""

from tagsure.cli.main import main

main()
