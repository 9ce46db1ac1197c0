"""The built-in backends, one module each; imported lazily by :mod:`kvstore.registry`."""
