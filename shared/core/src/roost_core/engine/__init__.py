"""The engine core: the one home of the run and task state machine, shared by every
service that changes runs. ``decisions`` holds what the engine decides, as pure
functions."""
