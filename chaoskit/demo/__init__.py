"""Demo applications to run under chaoskit: small, dependency-free stand-ins for real services.

- :mod:`chaoskit.demo.bookinfo` — Istio's Bookinfo sample (productpage, details, reviews v1/v2/v3,
  ratings) with the same calls, headers and hard-coded timeouts, so that Istio's traffic-management
  tasks give the documented results against ``experiments/bookinfo/``.
"""
