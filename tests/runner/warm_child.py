"""A job stand-in for the warm-start tests: reports what it sees, optionally waits, exits with a chosen code.

``python -m tests.runner.warm_child CODE SLEEP_S MODE``; MODE ``grandchild`` starts a long-lived grandchild,
``threads`` leaves a thread pool's non-daemon workers, an unclosed file (``$WARM_TEST_FILE``) and an atexit handler
behind, as training libraries do.
"""

import atexit
import concurrent.futures
import json
import os
import subprocess
import sys
import time

if __name__ == "__main__":
    exit_code, sleep_s, mode = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
    if mode == "grandchild":
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    if mode == "threads":
        pool = concurrent.futures.ThreadPoolExecutor(2)
        pool.submit(time.sleep, 0.1).result()
        unclosed = open(os.environ["WARM_TEST_FILE"], "w")  # noqa: SIM115 - left for the interpreter to flush
        unclosed.write("flushed when the interpreter ended")
        atexit.register(lambda: print(f"atexit handler ran, {pool} and {unclosed.name} still referenced", flush=True))
    print(json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd(), "pid": os.getpid(), "sid": os.getsid(0),
                      "marker": os.environ.get("WARM_TEST_MARKER"), "path": sys.path[:3],
                      "preloaded": "email.mime.text" in sys.modules}))
    time.sleep(sleep_s)
    sys.exit(exit_code)
