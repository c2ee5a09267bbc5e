"""tcpwatch: rebuild TCP connections from captures and show how each one went."""

__version__ = "0.1.0"
