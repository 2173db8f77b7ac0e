"""Command line: arguments -> Settings -> logging -> serve / demo / operator commands.

`model-mcp serve` runs the MCP server (stdio by default). The operator commands (`import`, `list`,
`validate`, ..., one per tool; see `model_mcp.commands` and docs/cli.md) call the same core use cases
directly and print a readable answer, or JSON with `--json`; they are for people and scripts at a
shell, not for MCP hosts. `migrate` moves a home into PostgreSQL and back (`commands/migrate.py`).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from model_mcp import __version__
from model_mcp.commands import log_level as operator_log_level
from model_mcp.commands import register as register_operator_commands
from model_mcp.commands import run as run_operator_command
from model_mcp.commands.migrate import register as register_migrate
from model_mcp.logs import setup_logging
from model_mcp.settings import Settings


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--home", type=Path, help="the store folder (default: $MODEL_MCP_HOME, else "
                                                  "$XDG_DATA_HOME/model-mcp)")
    parser.add_argument("--training-dir", type=Path, help="the training service's folder "
                                                          "(default: $MODEL_MCP_TRAINING_DIR)")
    parser.add_argument("--read-only", action="store_true", default=None,
                        help="offer only the tools that change nothing")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR (default INFO)")
    parser.add_argument("--enable-custom-script", action="store_true", default=None,
                        help="run packages' validate_model.py (in a limited subprocess) during validation")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 (off) or a positive number of seconds")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="model-mcp", description="MCP server for anomaly-detection models.")
    parser.add_argument("--version", action="version", version=f"model-mcp {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the MCP server")
    _common(serve)
    serve.add_argument("--transport", choices=["stdio", "http"], help="stdio (default) or Streamable HTTP")
    serve.add_argument("--host", help="HTTP bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="HTTP port (default 8765)")
    serve.add_argument("--watch-training", type=_seconds, nargs="?", const=30.0, metavar="SECONDS",
                       help="import new complete packages from the training folder every SECONDS "
                            "(30 without a value; default: $MODEL_MCP_WATCH_TRAINING_S, else off)")

    register_operator_commands(commands)
    register_migrate(commands)

    demo = commands.add_parser("demo", help="run the whole lifecycle through a real MCP client")
    demo.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temp folder)")
    return parser


def settings_from(args: argparse.Namespace, env: dict[str, str] | None = None) -> Settings:
    flags = {
        "home": getattr(args, "home", None),
        "training_dir": getattr(args, "training_dir", None),
        "read_only": getattr(args, "read_only", None),
        "log_level": getattr(args, "log_level", None),
        "enable_custom_script": getattr(args, "enable_custom_script", None),
        "transport": getattr(args, "transport", None),
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
        "watch_training_s": getattr(args, "watch_training", None),
    }
    return Settings.from_env(dict(os.environ) if env is None else env, **flags)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = settings_from(args)
    operator = args.command not in ("serve", "demo")
    # Operator commands keep info logs off the terminal unless asked for (--verbose, --log-level).
    setup_logging(operator_log_level(args, dict(os.environ)) if operator else settings.log_level)

    if args.command == "serve":
        from model_mcp.serve import serve

        return serve(settings)
    if args.command == "demo":
        from model_mcp.demo import main as demo_main

        return demo_main(args.keep)
    if args.command == "migrate":
        from model_mcp.commands.migrate import run as migrate

        return migrate(args, settings)

    return run_operator_command(args, settings)
