"""``webhooks soak``: the kafka-mode system under a steady load for minutes, its memory and latency sampled."""
