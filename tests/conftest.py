import os
import uuid

# Before any test module imports workers.settings (whose WorkerSettings reads the queue
# name at import): a queue of this run's own, so concurrent runs never take each other's
# jobs. Each xdist worker process imports this file, and gets its own.
os.environ["QUEUE_NAME"] = f"tenantry:test:{uuid.uuid4().hex[:10]}"

pytest_plugins = [
    "tests.fixtures.services",
    "tests.fixtures.database",
    "tests.fixtures.actors",
    "tests.fixtures.app",
    "tests.fixtures.worker",
    "tests.fixtures.smtp",
]
