"""`model-mcp migrate --to TARGET [--from SOURCE] [--artifact-root DIR]`: a home into PostgreSQL and
the shared artifact folder, or back into a home (core/pg/move.py does the work).

- `--to postgresql://...`: the source is the home (`--from DIR`, else `--home`, else the default
  home); package files and reports go to `--artifact-root` (else `MODEL_MCP_ARTIFACT_ROOT`).
- `--to DIR`: the source is the database (`--from URL`, else `MODEL_MCP_DATABASE_URL`) and the
  artifact folder (`--artifact-root`, else `MODEL_MCP_ARTIFACT_ROOT`).

Exit codes as every operator command's (docs/cli.md). A URL's password is never printed: sentences
name the database by `safe_url`, and every line is scrubbed of the password once more on its way out.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from model_mcp.commands import EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, EXIT_REFUSED, EXIT_USAGE, log_level
from model_mcp.commands.wording import for_the_shell
from model_mcp.terminal import printable

HELP = "copy a home into PostgreSQL and the shared artifact folder (--to postgresql://...), or back (--to DIR)"


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("migrate", help=HELP, description=HELP[:1].upper() + HELP[1:] + ".",
                                 allow_abbrev=False, epilog="Every file's sha256 is verified; safe to rerun. Run it "
                                 "with the servers stopped. docs/operations.md, PostgreSQL: moving in and out.")
    parser.add_argument("--to", dest="to", required=True, metavar="TARGET",
                        help="postgresql://... (a database) or a folder (a home to create or complete)")
    parser.add_argument("--from", dest="source", metavar="SOURCE",
                        help="to a database: the home (default --home, $MODEL_MCP_HOME); to a folder: the "
                             "database URL (default $MODEL_MCP_DATABASE_URL)")
    parser.add_argument("--artifact-root", type=Path, metavar="DIR",
                        help="the shared artifact folder (default $MODEL_MCP_ARTIFACT_ROOT)")
    group = parser.add_argument_group("store and output")
    group.add_argument("--home", type=Path, metavar="DIR",
                       help="the home to copy into a database (default: $MODEL_MCP_HOME, else $XDG_DATA_HOME/model-mcp)")
    group.add_argument("--json", action="store_true", help="print the report as JSON (for scripts)")
    group.add_argument("--verbose", "-v", action="store_true", help="show info logs on stderr")
    group.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], type=str.upper,
                       help="log level on stderr (default WARNING; --verbose means INFO)")


class _Usage(Exception):
    pass


def _is_url(text: str | None) -> bool:
    return bool(text) and str(text).startswith(("postgresql://", "postgres://"))


def _plan(args: argparse.Namespace, settings: Any) -> tuple[str, Any, Any, Path]:
    """(direction, source, target, artifact root) from the flags, then the settings and variables."""
    root = args.artifact_root or settings.artifact_root
    if _is_url(args.to):
        if args.source is not None and _is_url(args.source):
            raise _Usage("--to is a database, so --from must be a home folder, not a URL.")
        if root is None:
            raise _Usage("copying into a database needs the shared artifact folder for the package files: give "
                         "--artifact-root DIR or set MODEL_MCP_ARTIFACT_ROOT.")
        home = Path(args.source).expanduser() if args.source else Path(settings.home)
        return "home_to_database", home.absolute(), args.to, Path(root).expanduser().absolute()
    url = args.source if args.source is not None else settings.database_url
    if not _is_url(url):
        raise _Usage("--to is a folder, so the source is a database: give --from postgresql://... or set "
                     "MODEL_MCP_DATABASE_URL." if not url else "--to is a folder, so --from must be a "
                     "postgresql:// URL.")
    if root is None:
        raise _Usage("copying out of a database needs the shared artifact folder the package files are in: give "
                     "--artifact-root DIR or set MODEL_MCP_ARTIFACT_ROOT.")
    return "database_to_home", url, Path(args.to).expanduser().absolute(), Path(root).expanduser().absolute()


def _passwords(*texts: Any) -> list[str]:
    found = []
    for text in texts:
        if _is_url(text):
            password = urlsplit(str(text)).password
            if password:
                found += [password, unquote(password)]
    # Shorter ones would blank out ordinary letters of every line; they are never printed anyway (safe_url).
    return [p for p in found if len(p) >= 4]


def run(args: argparse.Namespace, settings: Any) -> int:
    from model_mcp.core.errors import ModelMcpError
    from model_mcp.logs import get_logger

    env = dict(os.environ)
    secrets = _passwords(args.to, args.source, getattr(settings, "database_url", None))

    def out(stream: Any, text: str) -> None:
        for secret in secrets:
            text = text.replace(secret, "***")
        stream.write(text + "\n")

    def fail(line: str, code: str) -> None:
        out(sys.stderr, printable(line))
        if args.json:
            out(sys.stdout, json.dumps({"error": {"code": code, "message": line}}, indent=2))

    try:
        direction, source, target, root = _plan(args, settings)
        from model_mcp.core.pg import move

        if direction == "home_to_database":
            report = move.home_to_database(source, target, root)
        else:
            report = move.database_to_home(source, root, target)
    except _Usage as exc:
        fail(f"model-mcp migrate: {exc}", "usage")
        return EXIT_USAGE
    except ModelMcpError as exc:
        fail(f"[{exc.code}] {for_the_shell(str(exc))}", exc.code)
        return EXIT_REFUSED
    except KeyboardInterrupt:
        sys.stderr.write("model-mcp migrate: interrupted; what was copied is complete and verified, rerun to finish.\n")
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - a bug: one line, the traceback only with --verbose
        verbose = log_level(args, env) in ("DEBUG", "INFO")
        if verbose:
            get_logger(__name__).error("cli_internal_error", command="migrate", exc_info=exc)
        hint = "; the log above has the details" if verbose else "; run again with --verbose for details"
        fail(f"model-mcp migrate: failed unexpectedly ({type(exc).__name__}){hint}.", "internal_error")
        return EXIT_INTERNAL
    if args.json:
        out(sys.stdout, json.dumps(dataclasses.asdict(report), indent=2))
    else:
        from model_mcp.core.pg.move import summary_lines

        out(sys.stdout, "\n".join(printable(line) for line in summary_lines(report)))
    return EXIT_OK
