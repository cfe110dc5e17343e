-- The outboxes hold one entry per stored batch: the keys of its new
-- readings (a JSON array of [station_id, observed_at] pairs), written in the
-- batch's own transaction. Once the batch commits, the aggregator and the
-- archiver get its readings in memory and delete the entry when they have
-- used them (the delete is what makes a reading count once); only entries
-- nobody holds, left by a crash or a restart, have their readings read back
-- from the observations. Times are Unix microseconds (UTC).
CREATE TABLE rollup_batches (
    seq        INTEGER PRIMARY KEY,
    keys       TEXT    NOT NULL,
    stored_at  INTEGER NOT NULL
);

CREATE TABLE archive_batches (
    seq        INTEGER PRIMARY KEY,
    keys       TEXT    NOT NULL,
    stored_at  INTEGER NOT NULL
);

-- One sequence for both: an entry has the same number in each.
CREATE TABLE stored_batch_seq (last INTEGER NOT NULL);
INSERT INTO stored_batch_seq VALUES (0);

-- What the per-reading outboxes still hold, 1,000 readings to an entry.
INSERT INTO rollup_batches (seq, keys, stored_at)
SELECT (seq / 1000) + 1, json_group_array(json_array(station_id, observed_at)), 0
FROM (SELECT * FROM rollup_outbox ORDER BY seq) GROUP BY seq / 1000;

INSERT INTO archive_batches (seq, keys, stored_at)
SELECT (SELECT coalesce(max(seq), 0) FROM rollup_batches) + (seq / 1000) + 1,
       json_group_array(json_array(station_id, observed_at)), 0
FROM (SELECT * FROM archive_outbox ORDER BY seq) GROUP BY seq / 1000;

UPDATE stored_batch_seq SET last = (SELECT coalesce(max(seq), 0) FROM
    (SELECT seq FROM rollup_batches UNION ALL SELECT seq FROM archive_batches));

DROP TABLE rollup_outbox;
DROP TABLE archive_outbox;
