# SPDX-License-Identifier: GPL-3.0-or-later
"""Stand-in for the get-pip.py bootstrap script ansible-test downloads for its venvs.

CI here reaches PyPI but not the host that serves get-pip.py. ansible-test runs this file
with pip's own arguments (``pip==X --no-setuptools ...``): install the bundled pip with
ensurepip, then let that pip install exactly what ansible-test asked for, from PyPI.
"""

import ensurepip
import subprocess
import sys

ensurepip.bootstrap(upgrade=True)
ARGS = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install"] + ARGS))
