"""RFC 9457 problem details: the one mapping from the contract's error codes to HTTP statuses.

Every failure on the HTTP edge (REST routes, /metrics, the token and Host/Origin checks on the
non-MCP paths) answers `application/problem+json`:

    {"type": "urn:model-mcp:problem:<code>", "title": "...", "status": 409,
     "detail": "the core's sentence", "code": "<code>", ...extension members}

`type` names the code as a URN (stable, and not a page anyone must host); `code` is the same string
a tool error puts in brackets on /mcp, so a client handles both interfaces with one table.
`validation_failed` carries the validation `report`, as the tool error does.

The statuses, in one table (`STATUS_BY_CODE`); a test walks every code in `core/errors.py`:
  400  bad requests the transport sees before the core (unreadable JSON, a wrong content type)
  401  no or wrong bearer token; 403 read_only or a foreign Origin; 421 a foreign Host
  404  not_found; 405 a method the path does not have
  409  the request fits, the state does not: version_conflict, invalid_state, no_rollback_target,
       version_mismatch, insufficient_data
  413  archive_too_large (also an upload refused while it streams)
  415  a content type the endpoint does not take
  422  the request or the package is wrong: invalid_input, not_a_zip, unsafe_archive,
       missing_required_files, invalid_metadata, invalid_manifest, hash_mismatch, invalid_version,
       untrusted_model, model_load_failed, validation_failed
  503  not serving now, may later: no_deployed_model, training_service_unavailable, registry_corrupt
  507  storage_error (disk full, permissions)
  500  internal_error (no detail beyond a reference to the server log)

Only starlette is imported here (not FastAPI): `http_app.py` uses `problem_response` for its
401 on REST paths without loading the REST stack.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

from model_mcp.core.errors import ModelMcpError

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_BASE = "urn:model-mcp:problem:"

STATUS_BY_CODE: dict[str, int] = {
    # the archive and the package
    "not_a_zip": 422,
    "unsafe_archive": 422,
    "archive_too_large": 413,
    "missing_required_files": 422,
    "invalid_metadata": 422,
    "invalid_manifest": 422,
    "hash_mismatch": 422,
    "invalid_version": 422,
    "version_conflict": 409,
    "untrusted_model": 422,
    "model_load_failed": 422,
    # the registry and serving
    "not_found": 404,
    "invalid_state": 409,
    "validation_failed": 422,
    "no_deployed_model": 503,
    "version_mismatch": 409,
    "invalid_input": 422,
    "no_rollback_target": 409,
    "insufficient_data": 409,
    "resource_limit": 409,
    "training_service_unavailable": 503,
    "read_only": 403,
    "registry_corrupt": 503,
    "storage_error": 507,
    "internal_error": 500,
    # the HTTP edge's own refusals (no core error class)
    "bad_request": 400,
    "unauthorized": 401,
    "forbidden_origin": 403,
    "misdirected_host": 421,
    "method_not_allowed": 405,
    "unsupported_media_type": 415,
}

TITLE_BY_CODE: dict[str, str] = {
    "not_a_zip": "The upload is not a ZIP archive",
    "unsafe_archive": "The archive is unsafe to unpack",
    "archive_too_large": "The upload is over a size limit",
    "missing_required_files": "The package lacks required files",
    "invalid_metadata": "metadata.json is not valid",
    "invalid_manifest": "deployment_manifest.json is not valid",
    "hash_mismatch": "A file differs from the manifest",
    "invalid_version": "The version name is not valid",
    "version_conflict": "The version exists with other content",
    "untrusted_model": "The model names untrusted code",
    "model_load_failed": "The model does not load",
    "not_found": "Not found",
    "invalid_state": "The version's status does not allow this",
    "validation_failed": "Validation failed",
    "no_deployed_model": "No model is serving",
    "version_mismatch": "Another version is deployed",
    "invalid_input": "The request is not valid",
    "no_rollback_target": "Nothing to roll back to",
    "insufficient_data": "Too little data",
    "resource_limit": "The resident models' memory budget would be passed",
    "training_service_unavailable": "The training service's folder is unavailable",
    "read_only": "The server is read-only",
    "registry_corrupt": "registry.json is damaged",
    "storage_error": "The store cannot be written",
    "internal_error": "Internal error",
    "bad_request": "Bad request",
    "unauthorized": "Unauthorized",
    "forbidden_origin": "Origin not allowed",
    "misdirected_host": "Host not allowed",
    "method_not_allowed": "Method not allowed",
    "unsupported_media_type": "Unsupported content type",
}


def status_for(code: str) -> int:
    """The HTTP status of a contract code; 500 for a code this table does not know (a test forbids that)."""
    return STATUS_BY_CODE.get(code, 500)


def problem_body(code: str, detail: str, *, status: int | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "type": TYPE_BASE + code,
        "title": TITLE_BY_CODE.get(code, code.replace("_", " ").capitalize()),
        "status": status if status is not None else status_for(code),
        "detail": detail,
        "code": code,
        **extra,
    }


def problem_response(code: str, detail: str, *, status: int | None = None,
                     headers: dict[str, str] | None = None, **extra: Any) -> Response:
    body = problem_body(code, detail, status=status, **extra)
    return Response(json.dumps(body, default=str), status_code=body["status"], headers=headers,
                    media_type=PROBLEM_CONTENT_TYPE)


def problem_for_error(exc: ModelMcpError) -> Response:
    """A core error as a problem; `validation_failed` carries its report like the tool error does."""
    extra: dict[str, Any] = {}
    report = exc.data.get("report") if exc.data else None
    if report is not None:
        extra["report"] = report
    return problem_response(exc.code, str(exc), **extra)
