"""The environment that keeps Prefect, MLflow and DVC from calling home, so an offline machine never waits.

Every `python -m pipeline ...` applies it before those libraries load (values already set win); the test
suite applies it too. DVC's own analytics are off in .dvc/config as well.
"""

from __future__ import annotations

import os

OFFLINE_ENV = {
    "DO_NOT_TRACK": "true",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DVC_NO_ANALYTICS": "1",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",  # its first start creates a DB: slow on 2 CPUs
}


def go_offline() -> None:
    """Set every OFFLINE_ENV variable that is not set already."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)
