# The run's HTML report (outputs/<run>/report/index.html): stages/report.py's ReportSettings
# are the defaults (e.g. gallery_size=4, compare_runs=()); override them in a config.
report = dict()
