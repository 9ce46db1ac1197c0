"""The Docker Engine API for the whole cluster (``swarmctl manage``)."""
