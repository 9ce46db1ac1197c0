"""A Consul HTTP API server for tests: what the ``consul`` kvstore backend uses, and no more.

No Consul binary can be had on the machines this project is built on, so
the Consul backend is tested against this server instead of a real Consul.
It follows Consul's documented HTTP API (and, where the documentation is
silent, what Consul's state store does) for:

* ``/v1/kv/:key`` with ``recurse``, ``keys``, ``separator``, ``raw``,
  ``cas``, ``acquire``, ``release`` and ``flags``;
* ``/v1/txn`` with the KV verbs;
* blocking queries (``index``, ``wait``, the ``X-Consul-Index`` header),
  with one global Raft index and tombstones, so indexes behave as Consul's
  do, including going backwards when tombstones are reaped;
* ``/v1/session/create|renew|destroy|info|list|node`` with ``TTL``,
  ``Behavior``, ``LockDelay``, invalidation on TTL expiry after twice the
  TTL, and ``session_ttl_min`` (``--session-ttl-min``, 10s by default as in
  Consul; tests lower it to use short TTLs);
* ``/v1/status/leader`` and ``/v1/status/peers``;
* an ACL token (``--acl-token``), basic auth as a reverse proxy would add
  it (``--basic-auth``), TLS that demands a client certificate (``--tls``);
* its data kept in a file across restarts (``--data``), for tests of a
  server restarted under a client.

Run it as its own process, so tests can kill and restart it like a real
server::

    python -m tests.consul_test_server --port 8500 [--tls CERT KEY CA] [--data FILE]

``tests/support/consul.py`` does that from pytest.
"""
