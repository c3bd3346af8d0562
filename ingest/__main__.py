from ingest.service import REQUIRED, serve_ingest
from shared.service import run_service

run_service("ingest", serve_ingest, REQUIRED)
