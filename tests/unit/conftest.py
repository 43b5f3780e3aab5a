# SPDX-License-Identifier: GPL-3.0-or-later
"""Make this checkout importable as ansible_collections.edgewarden.hardening.

The repository root is the collection root; Python can only import it under the
``ansible_collections/<namespace>/<name>`` path, so tests get a symlinked tree.
"""

import os
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BASE = os.path.join(tempfile.gettempdir(), "edgewarden-collections-%d" % os.getuid())
LINK = os.path.join(BASE, "ansible_collections", "edgewarden", "hardening")

os.makedirs(os.path.dirname(LINK), exist_ok=True)
if not (os.path.islink(LINK) and os.readlink(LINK) == ROOT):
    if os.path.islink(LINK):
        os.unlink(LINK)
    os.symlink(ROOT, LINK)
if BASE not in sys.path:
    sys.path.insert(0, BASE)
