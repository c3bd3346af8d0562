from api.service import REQUIRED, serve_api
from shared.service import run_service

run_service("api", serve_api, REQUIRED)
