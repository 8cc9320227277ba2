"""Events in, features out: the event log, the simulator and the Feast feature store."""
