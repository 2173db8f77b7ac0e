"""`python -m model_mcp` runs the command line."""

from model_mcp.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
