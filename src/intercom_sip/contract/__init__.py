"""The contract of a settings or call body: fields, rules, the strict JSON reader (pure)."""
