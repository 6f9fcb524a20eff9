"""Shared by every stage: the project error, atomic I/O, configuration reading and validation, seeds, event files."""
