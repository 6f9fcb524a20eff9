"""Model-first runs: one command (or one call) from an SLHA spectrum or a scan to a verdict per analysis."""
