"""Real SIP peers (Kamailio, coturn, SIPp) started and stopped by pytest fixtures."""
