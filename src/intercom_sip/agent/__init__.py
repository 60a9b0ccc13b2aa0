"""SIP orchestration: settings to registrations and calls, supervised; their status."""
