from tests.web.browser import browser, page, service

__all__ = ["browser", "page", "service"]
