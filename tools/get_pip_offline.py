"""Stand-in for the pip bootstrap script that ansible-test downloads from a host CI cannot reach.

ansible-test runs it inside a fresh virtual environment created without pip, passing
pip-install style arguments plus get-pip's own --no-setuptools/--no-wheel flags.
Bootstrap pip from the interpreter's bundled ensurepip, then let pip (from PyPI) do the rest.
"""

import ensurepip
import os
import subprocess
import sys

GET_PIP_ONLY_FLAGS = {"--no-setuptools", "--no-wheel"}

environment = dict(os.environ)
# ensurepip points PIP_CONFIG_FILE at /dev/null for its own run; the real install needs the machine's pip config.
ensurepip.bootstrap(upgrade=True)
args = [arg for arg in sys.argv[1:] if arg not in GET_PIP_ONLY_FLAGS]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", "--quiet"] + args, env=environment))
