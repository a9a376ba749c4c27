"""The engine core: the one home of the run and task state machine, shared by every
service that changes runs.

* ``decisions``: what the engine decides (retry or fail, how a run ends), as pure
  functions;
* ``plan``: transitions written once for blocking and async connections alike;
* ``record``: the end of every transaction that changes runs (events, admission,
  outbox, the run-final NOTIFY).
"""
