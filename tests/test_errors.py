from model_mcp.core import errors

CONTRACT_CODES = {
    "not_a_zip", "unsafe_archive", "archive_too_large", "missing_required_files", "invalid_metadata",
    "invalid_manifest", "hash_mismatch", "invalid_version", "version_conflict", "untrusted_model",
    "model_load_failed", "not_found", "invalid_state", "validation_failed", "no_deployed_model",
    "version_mismatch", "invalid_input", "no_rollback_target", "insufficient_data",
    "training_service_unavailable", "read_only", "registry_corrupt",
}
# Codes the project adds where the contract is silent (see the README).
PROJECT_CODES = {"internal_error", "storage_error"}
# Codes later issues add to the tree (several models: the resident memory budget).
ISSUE_CODES = {"resource_limit"}


def test_every_error_class_has_a_known_code() -> None:
    for cls in errors.all_error_classes():
        assert cls.code in CONTRACT_CODES | PROJECT_CODES | ISSUE_CODES, cls


def test_every_contract_code_has_a_class() -> None:
    codes = {cls.code for cls in errors.all_error_classes()}
    assert CONTRACT_CODES <= codes, CONTRACT_CODES - codes


def test_the_error_tree_in_the_docstring_names_every_class() -> None:
    doc = errors.__doc__ or ""
    for cls in errors.all_error_classes():
        assert cls.__name__ in doc, cls.__name__


def test_every_error_class_that_can_be_raised_carries_its_own_code() -> None:
    """A leaf class inheriting its parent's code would answer with the wrong code; say it once per class."""
    leaves = [cls for cls in errors.all_error_classes() if not cls.__subclasses__()]
    for cls in leaves:
        assert "code" in vars(cls), f"{cls.__name__} inherits its code instead of carrying its own"
    codes = [cls.code for cls in leaves]
    assert len(codes) == len(set(codes)), sorted(c for c in codes if codes.count(c) > 1)
