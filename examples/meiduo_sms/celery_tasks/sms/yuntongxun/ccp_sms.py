"""A local stand-in for the tutorial's SMS provider (容联云通讯 CCP).

It does not send anything: each "sent" SMS is appended to an outbox file. It can be told
to fail the first N sends (SMS_FAKE_FAIL_FIRST=N), so the task's retry path shows.
The count is kept in a file because the worker's pool runs tasks in several processes.
"""

import fcntl
import json
import os
import tempfile

_STATE_DIR = os.environ.get("SMS_FAKE_DIR") or os.path.join(tempfile.gettempdir(), "fake-sms")


class CCP:
    """send_template_sms returns 0 on success and -1 on failure, like the real one."""

    def send_template_sms(self, to, datas, temp_id):
        os.makedirs(_STATE_DIR, exist_ok=True)
        with open(os.path.join(_STATE_DIR, "state.lock"), "a+") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            attempts_path = os.path.join(_STATE_DIR, "attempts")
            attempts = int(open(attempts_path).read() or 0) if os.path.exists(attempts_path) else 0
            with open(attempts_path, "w") as f:
                f.write(str(attempts + 1))
        if attempts < int(os.environ.get("SMS_FAKE_FAIL_FIRST", "0")):
            return -1
        with open(os.path.join(_STATE_DIR, "outbox.jsonl"), "a") as outbox:
            outbox.write(json.dumps({"to": to, "datas": datas, "template": temp_id}) + "\n")
        return 0
