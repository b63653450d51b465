"""The worker: consumes task messages from a broker and runs them in a pool."""
