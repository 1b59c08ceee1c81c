pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.database",
    "tests.fixtures.app",
    "tests.fixtures.worker",
    "tests.fixtures.smtp",
]
