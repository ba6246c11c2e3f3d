"""celery-exporter's mixin alerts, kept as data in docs/examples, are valid Prometheus rules."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

MIXIN_ALERTS = Path(__file__).resolve().parents[2] / "docs" / "examples" / "celery-mixin-alerts.yml"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"  # Debian's prometheus package


def test_the_mixin_alerts_pass_promtool_check_rules() -> None:
    result = subprocess.run([PROMTOOL, "check", "rules", str(MIXIN_ALERTS)], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 3 rules found" in result.stdout


def test_the_mixin_alerts_select_celery_exporters_series() -> None:
    text = MIXIN_ALERTS.read_text()
    for alert in ("CeleryTaskHighFailRate", "CeleryHighQueueLength", "CeleryWorkerDown"):
        assert f'"alert": "{alert}"' in text
    for series in ("celery_task_failed_total", "celery_task_succeeded_total", "celery_queue_length",
                   "celery_worker_up"):
        assert series in text
