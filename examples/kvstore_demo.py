"""A short tour of kvstore on the embedded sqlite store: put/get, TTL, a watch across processes, a lock.

Run: .venv/bin/python examples/kvstore_demo.py [PATH]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import kvstore


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp()) / "kv.db"
    url = f"sqlite://{path}"
    print(f"store: {url}")
    with kvstore.from_url(url) as store:
        store.put("docker/swarm/nodes/127.0.0.1:2375", b"127.0.0.1:2375")
        pair = store.get("/docker/swarm/nodes/127.0.0.1:2375/")
        print(f"get -> {pair}")
        store.put("docker/swarm/nodes/127.0.0.1:2376", b"127.0.0.1:2376", ttl=1)
        with store.watch_tree("docker/swarm/nodes") as watch:
            print("watch_tree ->", [p.value.decode() for p in next(watch)])
            writer = (
                "import kvstore,sys; kvstore.new_store('sqlite',[sys.argv[1]])"
                ".put('docker/swarm/nodes/127.0.0.1:2377', b'127.0.0.1:2377')"
            )
            subprocess.run([sys.executable, "-c", writer, str(path)], check=True)
            start = time.monotonic()
            for pairs in watch:
                print(f"  +{time.monotonic() - start:5.2f}s", [p.value.decode() for p in pairs])
                if len(pairs) == 2 and all(not p.key.endswith("2376") for p in pairs):
                    break  # the other process's write arrived and the TTL key expired
        with store.new_lock("docker/swarm/leader", value=b"127.0.0.1:4000", ttl=5) as _:
            print("lock held; leader ->", store.get("docker/swarm/leader").value.decode())
        print("lock released; leader present:", store.exists("docker/swarm/leader"))


if __name__ == "__main__":
    main()
