"""One module per subcommand: read options, make one core call, render."""
