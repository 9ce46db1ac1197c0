"""swarmctl: Docker Swarm's discovery and cluster manager, built on kvstore.

No command exists yet; the command-line tool arrives with the discovery work.
"""
