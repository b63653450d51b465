"""``python -m celeriac`` is the ``celeriac`` command."""

from celeriac.cli.main import main

if __name__ == "__main__":
    main()
