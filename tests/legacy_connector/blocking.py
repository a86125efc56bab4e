"""A legacy connector whose second read() blocks, for the Ctrl-C test.

The blocked read() waits until close() is called, or for ``hold`` seconds. The run is
interrupted while it waits: close() must wait for read() to return, so read() returns
at the end of ``hold``, never because close() ran. Both write their times to ``log``.
"""

import json
import sys
import threading
import time

import panoply

CONFIG = {
    "title": "Blocking",
    "icon": "data:image/png;base64,iVBORw0KGgo=",
    "params": [
        {"name": "log", "title": "Where to write the timestamps", "required": True},
        {"name": "hold", "title": "Seconds the second read() blocks", "type": "number",
         "default": 3},
    ],
}


class Stream(panoply.DataSource):
    def __init__(self, source, options):
        super().__init__(source, options)
        self.calls = 0
        self.closed = threading.Event()

    def _write(self, event):
        with open(self.source["log"], "a") as handle:
            handle.write(json.dumps({"event": event, "at": time.monotonic(),
                                     "closed": self.closed.is_set()}) + "\n")

    def read(self):
        self.calls += 1
        if self.calls == 1:
            return [{"id": 1}]
        if self.calls > 2:
            return None
        self._write("read-start")
        sys.stderr.write("LEGACY READ BLOCKING\n")
        sys.stderr.flush()
        self.closed.wait(float(self.source.get("hold") or 3))
        self._write("read-end")
        return [{"id": 2}]

    def close(self):
        self._write("close")
        self.closed.set()
