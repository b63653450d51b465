"""What celeriac's ``pytest11`` entry point loads: no fixtures of its own, only the
plugin modules named in ``pytest_plugins``, so pytest registers each under its module
name and a conftest that names one too (``celeriac.contrib.pytest``, as Celery's docs
say for ``celery.contrib.pytest``, or ``celeriac.testing``) finds it loaded rather than
failing as registered twice. ``-p no:celeriac`` turns this off."""

pytest_plugins = ["celeriac.testing", "celeriac.contrib.pytest"]
