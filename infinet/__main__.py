"""``python -m infinet``: the command line (see :mod:`infinet.cli`)."""

from infinet.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
