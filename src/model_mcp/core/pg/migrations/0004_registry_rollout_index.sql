-- The predict path's one query (core/pg/registry.py `_fetch_deployed`) reads the deployed rows and the
-- rollout candidates (rows whose entry holds `rollout`): both through partial indexes of a few rows,
-- whatever the number of versions.
CREATE INDEX registry_entries_rollout ON registry_entries (position) WHERE entry ? 'rollout';
