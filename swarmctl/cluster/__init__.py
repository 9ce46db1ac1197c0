"""The cluster: one :class:`~swarmctl.cluster.engine.Engine` per Docker node that discovery yields."""
