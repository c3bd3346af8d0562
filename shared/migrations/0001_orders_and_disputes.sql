-- Orders, disputes and their events, on every shard.

CREATE TABLE orders (
    order_id        text PRIMARY KEY,
    user_id         text NOT NULL,
    status          text NOT NULL,
    amount          bigint NOT NULL CHECK (amount >= 0),
    currency        char(3) NOT NULL,
    idempotency_key text UNIQUE,
    last_event_at   timestamptz,          -- occurred_at of the last applied event
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_user_id_idx ON orders (user_id);

CREATE TABLE order_events (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    order_id          text NOT NULL REFERENCES orders (order_id),
    provider_event_id text NOT NULL,
    event_id          text NOT NULL,
    status            text NOT NULL,
    amount            bigint NOT NULL,
    currency          char(3) NOT NULL,
    occurred_at       timestamptz NOT NULL,
    received_at       timestamptz NOT NULL,
    applied           boolean NOT NULL,
    correlation_id    text,
    CONSTRAINT order_events_dedup UNIQUE (order_id, provider_event_id)
);

CREATE TABLE disputes (
    dispute_id    text PRIMARY KEY,
    order_id      text NOT NULL REFERENCES orders (order_id),
    user_id       text NOT NULL,
    status        text NOT NULL,
    reason        text NOT NULL,
    amount        bigint NOT NULL CHECK (amount >= 0),
    currency      char(3) NOT NULL,
    last_event_at timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX disputes_order_id_idx ON disputes (order_id);

-- Range-partitioned by the provider's occurred_at (monthly); the partition key is
-- part of the dedup key, so a provider retry (same occurred_at) is a duplicate.
CREATE TABLE dispute_events (
    dispute_id        text NOT NULL,
    provider_event_id text NOT NULL,
    event_id          text NOT NULL,
    status            text NOT NULL,
    reason            text NOT NULL,
    amount            bigint NOT NULL,
    currency          char(3) NOT NULL,
    occurred_at       timestamptz NOT NULL,
    received_at       timestamptz NOT NULL,
    applied           boolean NOT NULL,
    correlation_id    text,
    CONSTRAINT dispute_events_dedup UNIQUE (dispute_id, provider_event_id, occurred_at)
) PARTITION BY RANGE (occurred_at);

-- No row is ever refused for lack of a partition.
CREATE TABLE dispute_events_default PARTITION OF dispute_events DEFAULT;

-- Create the monthly partition holding `month_start` (UTC), moving any rows the
-- default partition already holds for that month into it. Safe to call repeatedly.
CREATE FUNCTION ensure_dispute_events_partition(month_start date) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    lower_bound timestamptz := date_trunc('month', month_start::timestamp) AT TIME ZONE 'UTC';
    upper_bound timestamptz := (date_trunc('month', month_start::timestamp) + interval '1 month') AT TIME ZONE 'UTC';
    part_name   text := format('dispute_events_%s', to_char(month_start, 'YYYY_MM'));
BEGIN
    IF to_regclass(part_name) IS NOT NULL THEN
        RETURN part_name;
    END IF;
    EXECUTE format('CREATE TABLE %I (LIKE dispute_events INCLUDING DEFAULTS)', part_name);
    EXECUTE format(
        'WITH moved AS (DELETE FROM dispute_events_default WHERE occurred_at >= %L AND occurred_at < %L RETURNING *)
         INSERT INTO %I SELECT * FROM moved', lower_bound, upper_bound, part_name);
    EXECUTE format('ALTER TABLE dispute_events ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                   part_name, lower_bound, upper_bound);
    RETURN part_name;
END;
$$;
