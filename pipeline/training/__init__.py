"""Training the localizers: data, optimisation, checkpoints."""
