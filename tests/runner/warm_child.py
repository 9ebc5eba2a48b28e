"""A job stand-in for the warm-start tests: reports what it sees, optionally waits, exits with a chosen code."""

import json
import os
import subprocess
import sys
import time

if __name__ == "__main__":
    exit_code, sleep_s, grandchild = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3] == "grandchild"
    if grandchild:
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    print(json.dumps({"argv": sys.argv[1:], "cwd": os.getcwd(), "pid": os.getpid(), "sid": os.getsid(0),
                      "marker": os.environ.get("WARM_TEST_MARKER"), "path": sys.path[:3],
                      "preloaded": "email.mime.text" in sys.modules}))
    time.sleep(sleep_s)
    sys.exit(exit_code)
