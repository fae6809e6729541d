"""borgstore-shaped synchronous backends, each a thin wrapper around an async aiodepot backend."""
