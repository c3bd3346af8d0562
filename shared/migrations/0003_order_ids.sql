-- Order ids are unique across shards. An order lives on its user's shard, so that shard's
-- primary key cannot see another user's order with the same id. Every shard therefore also
-- holds the order-id registry for the ids that hash to it (shard_for(order_id)): POST /orders
-- claims the id here first (the primary key decides between racing creates, one statement on
-- one database), then inserts the order on the claimant's shard. The claim carries the whole
-- request, so whoever finds a claim without its order (the claimant's retry, a competing
-- create) completes that insert; a claim whose insert can never succeed (its Idempotency-Key
-- already names another order of that shard) is deleted by whoever finds it so.
CREATE TABLE order_ids (
    order_id        text PRIMARY KEY,
    claim_id        uuid NOT NULL,
    user_id         text NOT NULL,
    amount          bigint NOT NULL CHECK (amount >= 0),
    currency        char(3) NOT NULL,
    idempotency_key text,
    claimed_at      timestamptz NOT NULL DEFAULT now()
);

-- Which claim an order was inserted for: the create that made the claim answers 201 even when
-- a competing create completed its insert first. NULL for orders older than the registry.
ALTER TABLE orders ADD COLUMN claim_id uuid;
