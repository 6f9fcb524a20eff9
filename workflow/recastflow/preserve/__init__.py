"""Preserving a run: the RO-Crate archive and its re-run."""
