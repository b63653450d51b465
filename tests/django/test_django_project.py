"""A Django project as ``django-admin startproject`` makes it, set up as Celery's "First
steps with Django" says with ``celery`` replaced by ``celeriac``, run by a real worker.

Checks: ``config_from_object('django.conf:settings', namespace='CELERY')``,
``autodiscover_tasks()`` with no arguments (INSTALLED_APPS), ``@shared_task``,
``delay_on_commit`` (sent on commit, never on rollback: the task reads the row the
transaction wrote), stale connections closed around tasks, and ``django-db`` results
readable with the ORM.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

pytest.importorskip("django")

ROOT = Path(__file__).resolve().parents[2]

CELERY_PY = '''
import os

from celeriac import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")

app = Celery("proj")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
'''

INIT_PY = '''
from .celery import app as celery_app

__all__ = ("celery_app",)
'''

MODELS_PY = '''
from django.db import models


class Order(models.Model):
    item = models.CharField(max_length=100)
    shipped = models.BooleanField(default=False)
'''

TASKS_PY = '''
from celeriac import shared_task
from django.db import connection

from .models import Order


@shared_task
def ship(order_id):
    order = Order.objects.get(pk=order_id)  # exists only once the sender committed
    order.shipped = True
    order.save()
    return {"item": order.item, "vendor": connection.vendor}
'''

CHECKS_PY = '''
import json
import os
import sys

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "proj.settings")
django.setup()

from django.db import transaction  # noqa: E402

from proj.celery import app  # noqa: E402
from shop.models import Order  # noqa: E402
from shop.tasks import ship  # noqa: E402

step = sys.argv[1]
if step == "send":
    with transaction.atomic():
        kept = Order.objects.create(item="kettle")
        ship.delay_on_commit(kept.pk)
        queued_inside = app.run_sync(app.clients.broker()).__class__.__name__
    try:
        with transaction.atomic():
            dropped = Order.objects.create(item="toaster")
            ship.apply_async_on_commit((dropped.pk,), countdown=0)
            raise RuntimeError("roll back")
    except RuntimeError:
        pass
    app.wait_for_publishes()
    print(json.dumps({"kept": kept.pk, "broker": queued_inside,
                      "tasks": sorted(t for t in app.tasks if t.startswith("shop."))}))
elif step == "results":
    from celeriac.contrib.django.models import TaskResult

    rows = [(r.status, json.loads(r.result)) for r in TaskResult.objects.all()]
    shipped = list(Order.objects.filter(shipped=True).values_list("item", flat=True))
    print(json.dumps({"rows": rows, "shipped": shipped,
                      "orders": Order.objects.count()}))
'''


def _run(cwd: Path, *args: str, env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.mark.parametrize("pool", ["solo", "prefork", "threads"])
def test_a_startproject_project_runs_its_tasks_on_commit(tmp_path: Path, pool: str) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(tmp_path)])}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    _run(tmp_path, "-m", "django", "startproject", "proj", ".", env=env)
    _run(tmp_path, "-m", "django", "startapp", "shop", env=env)
    (tmp_path / "proj" / "celery.py").write_text(CELERY_PY)
    (tmp_path / "proj" / "__init__.py").write_text(INIT_PY)
    (tmp_path / "shop" / "models.py").write_text(MODELS_PY)
    (tmp_path / "shop" / "tasks.py").write_text(TASKS_PY)
    (tmp_path / "checks.py").write_text(CHECKS_PY)
    settings = tmp_path / "proj" / "settings.py"
    settings.write_text(settings.read_text().replace(
        "INSTALLED_APPS = [", "INSTALLED_APPS = [\n    'shop',\n    'celeriac.contrib.django',")
        + textwrap.dedent(f"""
        CELERY_BROKER_URL = "sqlite:///{tmp_path}/broker.db"
        CELERY_RESULT_BACKEND = "django-db"
        CELERY_TASK_DEFAULT_QUEUE = "shop"
        """))
    _run(tmp_path, "manage.py", "makemigrations", "shop", env=env)
    _run(tmp_path, "manage.py", "migrate", env=env)

    sent = json.loads(_run(tmp_path, "checks.py", "send", env=env))
    assert sent["tasks"] == ["shop.tasks.ship"]  # found through INSTALLED_APPS

    log = tmp_path / "worker.log"
    with open(log, "wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celeriac", "-A", "proj", "worker", "-l", "info",
             "-P", pool], cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            got = json.loads(_run(tmp_path, "checks.py", "results", env=env))
            if got["rows"] or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        time.sleep(1.0)  # a task sent on the rolled-back transaction would run by now
        got = json.loads(_run(tmp_path, "checks.py", "results", env=env))
    finally:
        worker.terminate()
        worker.wait(30)
    text = log.read_text()
    assert got["rows"] == [["SUCCESS", {"item": "kettle", "vendor": "sqlite"}]], text
    assert got["shipped"] == ["kettle"] and got["orders"] == 1, text  # toaster rolled back
    assert "shop.tasks.ship" in text and "succeeded" in text
