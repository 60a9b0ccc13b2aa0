"""Tests of the media modules: G.711, RTP, RFC 4733 events, sources and recording."""
