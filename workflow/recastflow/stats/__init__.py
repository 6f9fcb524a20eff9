"""Stages patch and limits: signal patches, workspace checks, CLs, upper limits and compiled fits."""
