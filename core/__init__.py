"""The cis490 engine. Never imports typer and never prints: commands render."""
