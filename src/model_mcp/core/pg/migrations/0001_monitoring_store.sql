-- The monitoring store (core/pg/monitoring.py): the same tables as monitoring.db (core/monitoring_store/sqlite.py),
-- prefixed, in one database that every replica writes to. Timestamps that the SQLite store keeps as ISO text stay
-- text here, so that both backends compare and answer them alike.

CREATE TABLE monitoring_processes (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pid         integer NOT NULL,
    host        text NOT NULL,
    started_at  text NOT NULL,
    last_seen   text NOT NULL
);

CREATE TABLE monitoring_buckets (
    version       text NOT NULL,
    deployment    text NOT NULL,
    grain         integer NOT NULL,
    start         bigint NOT NULL,
    process       bigint NOT NULL,
    requests      bigint NOT NULL,
    rows          bigint NOT NULL,
    errors        bigint NOT NULL,
    flagged_rows  bigint NOT NULL,
    anomalies     bigint NOT NULL,
    busy_s        double precision NOT NULL,
    cpu_s         double precision NOT NULL,
    rss_bytes     bigint NOT NULL,
    latency       bytea,
    PRIMARY KEY (version, grain, start, deployment, process)
);
CREATE INDEX monitoring_buckets_start ON monitoring_buckets (start);

CREATE TABLE monitoring_window_rows (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    version     text NOT NULL,
    deployment  text NOT NULL,
    kind        smallint NOT NULL,  -- 0 recent, 1 baseline
    at          double precision NOT NULL,
    x           bytea NOT NULL,     -- float64 row, little-endian
    score       double precision,
    label       bigint
);
CREATE INDEX monitoring_window_rows_key ON monitoring_window_rows (version, deployment, kind, id);

CREATE TABLE monitoring_requests (
    request_id  text PRIMARY KEY,
    version     text NOT NULL,
    deployment  text NOT NULL,
    at          double precision NOT NULL,
    n_rows      integer NOT NULL,
    labels      bytea
);
CREATE INDEX monitoring_requests_version ON monitoring_requests (version, at);

CREATE TABLE monitoring_feedback (
    request_id  text PRIMARY KEY,
    version     text NOT NULL,
    deployment  text NOT NULL,
    at          double precision NOT NULL,
    n_rows      integer NOT NULL,
    truth       bytea NOT NULL,
    predicted   bytea NOT NULL
);
CREATE INDEX monitoring_feedback_deployment ON monitoring_feedback (version, deployment, at);

CREATE TABLE monitoring_drift_reports (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    version     text NOT NULL,
    deployment  text NOT NULL,
    at          text NOT NULL,
    summary     json NOT NULL       -- json, not jsonb: the summary's keys keep their order
);
CREATE INDEX monitoring_drift_reports_version ON monitoring_drift_reports (version, id);

CREATE TABLE monitoring_alerts (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key         text NOT NULL,
    kind        text NOT NULL,
    severity    text NOT NULL,
    version     text,
    message     text NOT NULL,
    action      text,
    first_seen  text NOT NULL,
    last_seen   text NOT NULL,
    count       integer NOT NULL,
    active      boolean NOT NULL
);
CREATE INDEX monitoring_alerts_last_seen ON monitoring_alerts (last_seen);
-- One open episode per alert key, whichever replica evaluates.
CREATE UNIQUE INDEX monitoring_alerts_one_active ON monitoring_alerts (key) WHERE active;
