-- A provider's payment (Stripe: the PaymentIntent id) -> the order and user it paid. Disputes from
-- such a provider name only the payment; they are applied to the order found here. A link lives on
-- shard_for(provider_payment_id) (like the order_ids registry), so one lookup on one shard finds it
-- without knowing the user. It is written once one of the payment's order events was applied (or
-- found stale or already stored) on the order's shard, so it only ever names an order that exists
-- and belongs to that user; the first link of a payment stands (a later event naming another order
-- for the same payment does not move the payment's disputes).
CREATE TABLE payment_links (
    provider_payment_id text PRIMARY KEY,
    order_id            text NOT NULL,
    user_id             text NOT NULL,
    linked_at           timestamptz NOT NULL DEFAULT now()
);
