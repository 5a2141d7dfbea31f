"""``python -m spinereg.web ARGS``: Django's manage.py for the web registry (settings from the environment).

``python -m spinereg.web migrate`` creates or upgrades every table (registry and
web) through the registry's service; ``spinereg db init`` runs it.  Other
arguments go to Django's management commands (``check --deploy``,
``makemigrations spinereg_web``, ``compilemessages``).
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    from spinereg._errors import SpineregError
    from spinereg.web import configure

    try:
        if argv[1:2] == ["migrate"]:
            from spinereg.registry import migrate

            configure(must_exist=False)
            migrate("default")
            return 0
        configure(must_exist=False)
    except SpineregError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    from django.core.management import execute_from_command_line

    execute_from_command_line(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
