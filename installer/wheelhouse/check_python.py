"""Refuse, with one clear message, a Python this wheelhouse carries no wheels for.

    python3 check_python.py 3.11 3.12 3.13      (exit 0: supported; 2: not, and says so)

Written for any Python 3, however old: it must be able to say no.
"""

import sys


def main(argv):
    supported = argv[1:]
    mine = "%d.%d" % sys.version_info[:2]
    if mine in supported:
        return 0
    sys.stderr.write(
        "milkconsole: this wheelhouse is for Python %s; %s is Python %s.\n"
        "Run install.sh with one of those (for example PYTHON=python%s ./install.sh),\n"
        "or install the Debian package instead: it needs no Python at all.\n"
        % (", ".join(supported), sys.executable, mine, supported[-1] if supported else "3")
    )
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
