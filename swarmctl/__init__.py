"""swarmctl: Docker Swarm's discovery and cluster manager, built on kvstore."""

__version__ = "0.1.0"
