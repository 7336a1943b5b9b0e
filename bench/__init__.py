"""The scanner benchmark: corpus generators, tool runners and the results table."""
