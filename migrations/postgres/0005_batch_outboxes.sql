-- The outboxes hold one entry per stored batch: the keys of its new
-- readings, written in the batch's own transaction. Once the batch commits,
-- the aggregator and the archiver get its readings in memory and delete the
-- entry when they have used them (the delete is what makes a reading count
-- once); only entries nobody holds, left by a crash or a restart, have
-- their readings read back from the observations.
CREATE SEQUENCE stored_batch_seq;

CREATE TABLE rollup_batches (
    seq           bigint        PRIMARY KEY,
    station_ids   text[]        NOT NULL,
    observed_ats  timestamptz[] NOT NULL,
    stored_at     timestamptz   NOT NULL DEFAULT now()
);

CREATE TABLE archive_batches (
    seq           bigint        PRIMARY KEY,
    station_ids   text[]        NOT NULL,
    observed_ats  timestamptz[] NOT NULL,
    stored_at     timestamptz   NOT NULL DEFAULT now()
);

-- What the per-reading outboxes still hold, 1,000 readings to an entry.
INSERT INTO rollup_batches (seq, station_ids, observed_ats)
SELECT nextval('stored_batch_seq'), array_agg(station_id ORDER BY seq),
       array_agg(observed_at ORDER BY seq)
FROM rollup_outbox GROUP BY seq / 1000 ORDER BY seq / 1000;

INSERT INTO archive_batches (seq, station_ids, observed_ats)
SELECT nextval('stored_batch_seq'), array_agg(station_id ORDER BY seq),
       array_agg(observed_at ORDER BY seq)
FROM archive_outbox GROUP BY seq / 1000 ORDER BY seq / 1000;

DROP TABLE rollup_outbox;
DROP TABLE archive_outbox;
