"""Command line: arguments -> Settings -> logging -> serve / demo / operator commands.

`model-mcp serve` runs the MCP server (stdio by default). The operator commands (`import`, `list`,
`validate`, ...) call the same core use cases directly and print JSON to stdout; they are for
people at a shell, not for MCP hosts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from model_mcp import __version__
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="model-mcp", description="MCP server for anomaly-detection models.")
    parser.add_argument("--version", action="version", version=f"model-mcp {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the MCP server")
    _common(serve)
    serve.add_argument("--transport", choices=["stdio", "http"], help="stdio (default) or Streamable HTTP")
    serve.add_argument("--host", help="HTTP bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="HTTP port (default 8765)")

    importer = commands.add_parser("import", help="import a package ZIP")
    _common(importer)
    importer.add_argument("zip", type=Path)

    lister = commands.add_parser("list", help="list registered versions")
    _common(lister)
    lister.add_argument("--status")

    validate = commands.add_parser("validate", help="validate a version")
    _common(validate)
    validate.add_argument("version", nargs="?")
    validate.add_argument("--shallow", action="store_true", help="do not load the model")

    deploy = commands.add_parser("deploy", help="deploy a version")
    _common(deploy)
    deploy.add_argument("version")

    rollback = commands.add_parser("rollback", help="roll back to the previous deployment")
    _common(rollback)
    rollback.add_argument("--to", dest="to_version")

    predict = commands.add_parser("predict", help="predict with the deployed version")
    _common(predict)
    predict.add_argument("--input", required=True, type=Path,
                         help="rows.csv (a header of feature names) or rows.json (a list of rows)")
    predict.add_argument("--model-version", dest="model_version", help="answer only if this version is deployed")

    demo = commands.add_parser("demo", help="run the whole lifecycle through a real MCP client")
    demo.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temp folder)")
    return parser


def read_rows(path: Path) -> list[Any]:
    """Rows from a JSON list, or a CSV whose header names the features (rows become objects)."""
    import csv

    text = path.read_text()
    if path.suffix.lower() == ".json":
        value = json.loads(text)
        return value["rows"] if isinstance(value, dict) and "rows" in value else value
    reader = csv.DictReader(text.splitlines())
    rows: list[Any] = []
    for record in reader:
        row: dict[str, Any] = {}
        for key, raw in record.items():
            try:
                row[key] = float(raw)
            except (TypeError, ValueError):
                row[key] = raw  # left for predict to refuse, naming the row
        rows.append(row)
    return rows


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
    }
    return Settings.from_env(dict(os.environ) if env is None else env, **flags)


def _print(value: Any) -> None:
    if hasattr(value, "model_dump"):
        value = value.model_dump(mode="json")
    sys.stdout.write(json.dumps(value, indent=2, default=str) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = settings_from(args)
    setup_logging(settings.log_level)

    if args.command == "serve":
        from model_mcp.serve import serve

        return serve(settings)
    if args.command == "demo":
        from model_mcp.demo import main as demo_main

        return demo_main(args.keep)

    from model_mcp.core.errors import ModelMcpError
    from model_mcp.core.manager import ModelManager

    manager = ModelManager(settings)
    try:
        manager.start()
        if args.command == "import":
            _print(manager.import_zip(path=str(args.zip)))
        elif args.command == "list":
            _print(manager.list_models(status=args.status))
        elif args.command == "validate":
            _print(manager.validate(version=args.version, deep=not args.shallow))
        elif args.command == "deploy":
            _print(manager.deploy(version=args.version))
        elif args.command == "rollback":
            _print(manager.rollback(to_version=args.to_version))
        elif args.command == "predict":
            _print(manager.predict(rows=read_rows(args.input), version=args.model_version))
    except ModelMcpError as exc:
        sys.stderr.write(f"[{exc.code}] {exc}\n")
        return 2
    return 0
