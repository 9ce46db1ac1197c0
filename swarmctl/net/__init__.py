"""Transport to the manager's peers: the engines and, for a replica, the primary manager.

The bottom of the manager's stack: byte streams for hijacked connections
(attach, exec) that can half-close over TLS too, and the primary as an HTTP
target the API's proxy relays to. Nothing here knows the API or the cluster.
"""
