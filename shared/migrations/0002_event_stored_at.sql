-- When each event row was written: with received_at, the end-to-end latency of every event.
ALTER TABLE order_events ADD COLUMN stored_at timestamptz NOT NULL DEFAULT clock_timestamp();
ALTER TABLE dispute_events ADD COLUMN stored_at timestamptz NOT NULL DEFAULT clock_timestamp();
