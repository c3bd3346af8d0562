from shared.service import run_service
from workers.service import REQUIRED, serve_workers

run_service("workers", serve_workers, REQUIRED)
