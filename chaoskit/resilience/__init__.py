"""Pure, sans-I/O resilience policies: retries (and, as they land, breakers and ejection).

They take outcomes and return decisions; the proxy does the waiting and the sending.
"""
