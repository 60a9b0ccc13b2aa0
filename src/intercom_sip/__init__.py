"""intercom-sip: the SIP side of an IP intercom's indoor monitor, over the vendor's HTTP API."""

__version__ = "0.1.0"
USER_AGENT = f"intercom-sip/{__version__}"
