"""The run report: one image's chain as a panel (`panels`), plots, and the HTML page."""
