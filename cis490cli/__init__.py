"""The cis490 command-line app: global options and the one error boundary."""
