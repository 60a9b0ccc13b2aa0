"""intercom-sip: the SIP side of an IP intercom's indoor monitor, over the vendor's HTTP API."""

__version__ = "0.1.0"
USER_AGENT = f"intercom-sip/{__version__}"
# What /api/info calls `commit`; a packager who builds from a tagged commit may put its
# hash here. Left as the version, it still names the build: one release, one build.
BUILD_ID = f"v{__version__}"
