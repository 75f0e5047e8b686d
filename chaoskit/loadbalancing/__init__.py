"""Pure load balancing: which endpoint of a cluster serves the next attempt."""
