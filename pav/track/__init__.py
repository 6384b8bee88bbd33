"""`python -m pav.track`: the command-line name of pav.tracking."""
