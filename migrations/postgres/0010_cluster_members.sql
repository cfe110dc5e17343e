-- The instances of a cluster (cluster.role = "worker"), one row each: who
-- they are, where their API answers, and what they last said they own.
-- Whether a member is alive is not read from here but from its session's
-- advisory lock (`lock_key`, under the cluster's key), which PostgreSQL
-- frees the moment the session ends; `seen_at` is its heartbeat, by which
-- a member that stopped answering while its session stayed open is found.
CREATE TABLE cluster_members (
    cluster text NOT NULL,
    instance text NOT NULL,
    lock_key integer NOT NULL,
    pid integer NOT NULL,
    web text,
    started_at timestamptz NOT NULL,
    seen_at timestamptz NOT NULL,
    partitions integer[] NOT NULL DEFAULT '{}',
    leader boolean NOT NULL DEFAULT false,
    PRIMARY KEY (cluster, instance)
);
