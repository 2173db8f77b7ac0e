"""model-mcp: an MCP server for the lifecycle of anomaly-detection models."""

__version__ = "0.1.0"
