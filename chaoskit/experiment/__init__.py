"""Running experiments: lifecycle, traffic, checks, journal, reports, exploration.

(Singular ``experiment`` so it is never confused with the top-level ``experiments/`` examples.)
"""
