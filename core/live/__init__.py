"""Live inference: what turns a model's per-window probabilities into what the
dashboard shows (trust over time), independent of the server."""
