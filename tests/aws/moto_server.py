"""Run moto server with the compatibility shim: ``python tests/aws/moto_server.py PORT``.

A separate process because moto's Step Functions interpreter needs antlr4 runtime 4.13 while Isaac Lab's
Hydra/OmegaConf pin 4.9: the harness puts a 4.13 copy first on this process's PYTHONPATH only.
"""

from __future__ import annotations

import sys
import threading

import moto_compat
from moto.server import ThreadedMotoServer

if __name__ == "__main__":
    moto_compat.install()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
    server.start()
    print("moto server ready", flush=True)
    threading.Event().wait()
