"""Data sets: the prepared-data-set index every stage reads, and its sources."""
