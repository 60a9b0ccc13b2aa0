"""The administrator: credentials and tokens, the login limit, the password watch."""
