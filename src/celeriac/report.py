"""What a bug report needs, as Celery's ``bugreport`` builds it (``celeriac report``,
``app.bugreport()``, ``celeriac.bugreport()``): software versions, platform, broker and
results (passwords masked), then every setting the app or the environment changed, with
secrets masked as Celery masks them (a name with API, TOKEN, KEY, SECRET, PASS,
SIGNATURE or DATABASE in it; passwords in URLs)."""

from __future__ import annotations

import importlib.metadata
import platform
import pprint
import re
import sys
from typing import Any

from celeriac import __version__
from celeriac.brokers.base import mask_url
from celeriac.config import SETTINGS

#: Celery's celery.app.utils.HIDDEN_SETTINGS
HIDDEN_SETTINGS = re.compile(r"API|TOKEN|KEY|SECRET|PASS|PROFANITIES_LIST|SIGNATURE|DATABASE",
                             re.IGNORECASE)
MASK = "********"
#: the libraries celeriac talks to servers with, when installed
LIBRARIES = ("redis", "hiredis", "aiormq", "pamqp", "uvloop", "psycopg", "click", "kombu",
             "celery", "django")


def masked(name: str, value: Any) -> Any:
    """A setting's value fit to paste in an issue."""
    if HIDDEN_SETTINGS.search(name) and value:
        if isinstance(value, str) and "://" in value:
            return mask_url(value)
        return MASK
    if isinstance(value, str) and "://" in value:
        return mask_url(value)
    if isinstance(value, dict):
        return {k: masked(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(masked(name, v) for v in value)
    return value


def _versions() -> list[str]:
    found = []
    for name in LIBRARIES:
        try:
            found.append(f"{name}:{importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def report_text(app: Any) -> str:
    """The report for one app."""
    conf = app.conf
    software = [f"celeriac:{__version__}", f"py:{platform.python_version()}", *_versions()]
    rows = [
        "software -> " + " ".join(software[:3]),
        *("            " + " ".join(software[i:i + 3]) for i in range(3, len(software), 3)),
        f"platform -> system:{platform.system()} arch:{' '.join(platform.architecture())}",
        f"            kernel version:{platform.release()} "
        f"imp:{platform.python_implementation()}",
        f"loader   -> {type(app).__module__}.{type(app).__name__} (app {app.main!r})",
        f"settings -> transport:{mask_url(app.broker_url).split('://')[0]} "
        f"results:{mask_url(app.result_backend_url) if app.result_backend_url else 'disabled'}",
        "",
    ]
    changed = {name: masked(name, conf[name]) for name in conf if conf.is_set(name)}
    if "broker_url" not in changed:
        changed["broker_url"] = mask_url(app.broker_url)
    for name in sorted(changed):
        value = pprint.pformat(changed[name], width=80, sort_dicts=True)
        unknown = "" if name in SETTINGS else "  # not a celeriac setting"
        rows.append(f"{name}: {value}{unknown}")
    rows.append(f"executable: {sys.executable!r}")
    return "\n".join(rows)
