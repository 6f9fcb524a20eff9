"""Checks: pre-run checks of front-end inputs, yields against published patches, regression references."""
