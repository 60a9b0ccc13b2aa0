"""Tests of the SIP agent: its pure core and its adapters."""
