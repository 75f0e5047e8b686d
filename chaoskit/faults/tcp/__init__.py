"""UpstreamFault actions for TCP connections: Toxiproxy's toxics, selected per connection.

The HTTP actions (:mod:`chaoskit.faults.actions`) act on one upstream *attempt* of a request;
these act on one TCP *connection* relayed by a TCP listener (``chaoskit proxy --tcp``), from
its first byte to its close, the unit Toxiproxy's toxicity is rolled for:

- :mod:`.shaping` — ``latency``, ``bandwidth``, ``slicer``: how the bytes of one direction
  flow (they combine);
- :mod:`.endings` — ``limitData``, ``resetPeer``, ``timeout``: how the connection ends early
  (at most one);
- :mod:`.actions` — the table both the YAML parser and the plan read (:data:`TCP_ACTIONS`);
- :mod:`.plan` — every fault that fires for one connection folded into a
  :class:`~.plan.ConnectionPlan`.

A fault holds HTTP actions or TCP actions, never both (``UpstreamFault.is_tcp``). Nothing here
imports the plan's dependencies at package load: :mod:`chaoskit.config.upstream_fault` reads
:mod:`.actions` while ``chaoskit.config`` is still loading.
"""
