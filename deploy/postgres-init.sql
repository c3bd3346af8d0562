-- Two shard databases on one PostgreSQL server (separate servers in production).
CREATE DATABASE webhooks_shard0;
CREATE DATABASE webhooks_shard1;
