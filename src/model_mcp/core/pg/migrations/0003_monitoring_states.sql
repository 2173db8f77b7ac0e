-- Small JSON states of the monitoring store, by key: rollout comparisons per replica
-- (rollout/<model>/<started_at>/<process>), summed by rollout_report.
CREATE TABLE monitoring_states (
    key text PRIMARY KEY,
    value text NOT NULL,
    updated_at text NOT NULL
);
