-- Where each Kafka->Postgres projection stands in the log. A projection writes
-- its rows and its checkpoint in one transaction and resumes from here, never
-- from the consumer group's commit.
CREATE TABLE IF NOT EXISTS projection_checkpoints (
    projection  text        NOT NULL,
    topic       text        NOT NULL,
    partition   int         NOT NULL,
    next_offset bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, topic, partition)
);
