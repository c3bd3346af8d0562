"""Distinctive secrets, and values of secret variables each process must refuse without quoting them.

Every secret holds one of ``WORDS``; an output "leaks" if it holds any of ``SECRET_TEXTS``
(a fragment of a secret is as bad as all of it).
"""

from __future__ import annotations

import base64

WORDS = ("ZEBRA", "QUOKKA", "PANGOLIN", "NARWHAL", "AXOLOTL", "OKAPI")
WEBHOOK_KEY = b"ZEBRA-webhook-key-5150"
WHSEC = "whsec_" + base64.b64encode(WEBHOOK_KEY).decode()
SECRET_TEXTS = (*WORDS, WHSEC.removeprefix("whsec_"), base64.b64encode(b"ZEBRA").decode()[:6])
STRIPE_SECRETS = ("whsec_OKAPIstripe0123456789ab", "whsec_OKAPIrotated9876543210zz")  # Stripe: the literal text
GOOD = {"WEBHOOK_SECRETS": WHSEC, "INTERNAL_TOKEN": "QUOKKA-internal-7731",
        "API_TOKENS": "PANGOLIN-api-4417,NARWHAL-api-9902", "STRIPE_WEBHOOK_SECRETS": ",".join(STRIPE_SECRETS)}

# (variable, bad value, what the error must say instead of the value)
BAD = [
    ("WEBHOOK_SECRETS", "whsec_ZEBRA!!notbase64", "whsec_<base64>"),
    ("WEBHOOK_SECRETS", f"{WHSEC},ZEBRA-plain-text-secret", "(item 2 of 2 is not)"),
    ("WEBHOOK_SECRETS", "whsec_" + base64.b64encode(b"ZEBRA-short").decode(), "at least 16 bytes"),
    ("INTERNAL_TOKEN", "QUOKKA", "a token of at least 8 characters"),
    ("STRIPE_WEBHOOK_SECRETS", "OKAPI-not-a-stripe-secret", "Stripe signing secrets whsec_"),
    ("STRIPE_WEBHOOK_SECRETS", f"{STRIPE_SECRETS[0]},whsec_OKAPI", "(item 2 of 2 is not)"),
    ("API_TOKENS", "PANGOLIN-api-4417,NARWHAL", "(item 2 of 2 is not)"),
    # asyncpg would misread these; its errors would quote a piece of the password
    ("DATABASE_URLS", "postgresql://app:AXOLOTL/pw?x@db:5432/shard0", "(postgresql://app:***@db:5432/shard0)"),
    ("DATABASE_URLS", "postgresql://app:AXO@LOTL@db:5432/shard0", "(postgresql://app:***@db:5432/shard0)"),
    ("DATABASE_URLS", "postgresql://app:AXOLOTL#x@db/shard0", "(postgresql://app:***@db/shard0)"),
    ("DATABASE_URLS", "postgresql://app@db/s0?password=AXOLOTL&sslmode",
     "(postgresql://app@db/s0?password=***&sslmode)"),
    ("DATABASE_URLS", "postgresql://app:ok-pw@db/s0,mysql://app:AXOLOTL@db/s1", "shard1 (mysql://app:***@db/s1)"),
    ("DATABASE_URLS", "host=db user=app password=AXOLOTL", "shard0 (not shown)"),
]


def leaks(text: str) -> list[str]:
    return [word for word in SECRET_TEXTS if word in text]
