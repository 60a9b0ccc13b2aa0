"""SIP: a sans-IO core (messages, digest, transactions, registration) and its asyncio shell."""
