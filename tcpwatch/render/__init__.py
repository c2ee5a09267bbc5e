"""Terminal views: the connection table, timelines and the live dashboard."""
