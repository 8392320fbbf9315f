# Where and how a run happens. These keys never change a stage's fingerprint.
run_name = None  # the run folder's name; None: the config file's name
work_dir = 'outputs'  # runs live in <work_dir>/<run_name>/ (or --work-dir)
log_level = 'INFO'
