-- Following a change reads only what changed (core/pg/registry.py `view`): each row carries the
-- generation of the change that last wrote it, and each removed version leaves a tombstone with the
-- generation of its removal. Tombstones older than `removed_since` are pruned; a replica whose copy is
-- older than that reads the whole registry once, as before.
ALTER TABLE registry_entries ADD COLUMN generation bigint NOT NULL DEFAULT 0;
UPDATE registry_entries SET generation = (SELECT generation FROM registry_state);
CREATE INDEX registry_entries_generation ON registry_entries (generation);

CREATE TABLE registry_removed (
    version     text NOT NULL,
    generation  bigint NOT NULL
);
CREATE INDEX registry_removed_generation ON registry_removed (generation);

-- Tombstones are complete for every generation above this one.
ALTER TABLE registry_state ADD COLUMN removed_since bigint NOT NULL DEFAULT 0;
UPDATE registry_state SET removed_since = generation;
