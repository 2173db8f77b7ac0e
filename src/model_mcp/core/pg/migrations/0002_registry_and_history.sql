-- The registry (core/pg/registry.py) and the audit trail (core/pg/history.py).

-- One row per version: the entry as registry.json holds it (RegistryEntry.registry_json()), with the
-- columns the rules and queries need beside it. `position` keeps the order versions were added in,
-- as registry.json's object does.
CREATE TABLE registry_entries (
    version     text PRIMARY KEY,
    model_name  text,
    status      text NOT NULL CHECK (status IN ('imported', 'available', 'deployed', 'failed', 'archived')),
    entry       jsonb NOT NULL,
    position    bigint GENERATED ALWAYS AS IDENTITY,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    -- The columns are the entry's own fields, never a second opinion.
    CHECK (entry ->> 'version' = version),
    CHECK (entry ->> 'status' = status),
    CHECK (model_name IS NOT DISTINCT FROM entry ->> 'model_name')
);
CREATE INDEX registry_entries_model_name ON registry_entries (model_name);
CREATE INDEX registry_entries_status ON registry_entries (status);
-- At most one deployed version per model name (versions without a name share one slot).
CREATE UNIQUE INDEX registry_one_deployed_per_model
    ON registry_entries ((COALESCE(model_name, ''))) WHERE status = 'deployed';

-- One row: bumped by every registry change, in its transaction, and announced with NOTIFY
-- model_mcp_registry, so replicas know when their cached copy is stale.
CREATE TABLE registry_state (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    generation  bigint NOT NULL
);
INSERT INTO registry_state (id, generation) VALUES (true, 0);

-- The audit trail, append-only. `entry` is the event as history.jsonl holds it (json: keys keep their order).
CREATE TABLE history_events (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at       text NOT NULL,
    event    text NOT NULL,
    version  text,
    outcome  text NOT NULL,
    entry    json NOT NULL
);
CREATE INDEX history_events_event ON history_events (event, id);
CREATE INDEX history_events_version ON history_events (version, id);
