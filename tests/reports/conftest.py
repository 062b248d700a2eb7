from tests.web.conftest import run_sqlite  # noqa: F401  (a daemon with the four sandboxes, on SQLite)
