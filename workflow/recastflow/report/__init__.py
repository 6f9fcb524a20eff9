"""The run's report: plots and the HTML page."""
