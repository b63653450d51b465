"""The tutorial end to end on the embedded SQLite broker: no server needed.

1. start a worker exactly as the tutorial does: celeriac -A celery_tasks.main worker -l info
2. send three SMS codes with ccp_send_sms_code.delay(mobile, sms_code); the stand-in SMS
   provider fails the first send, so one retry (3 s backoff) shows in the worker's log
3. print each result, then stop the worker with SIGTERM (warm shutdown)

Run from anywhere: python examples/meiduo_sms/run_demo.py
"""

import os
import random
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> int:
    work = tempfile.mkdtemp(prefix="celeriac-demo-")
    env = dict(os.environ)
    env.update({
        "CELERIAC_BROKER_URL": "sqlite://",  # the embedded broker (config.py says amqp)
        "CELERIAC_HOME": work,               # keep the demo's SQLite file apart
        "SMS_FAKE_DIR": os.path.join(work, "sms"),
        "SMS_FAKE_FAIL_FIRST": "1",
        "PYTHONUNBUFFERED": "1",
    })
    os.environ.update(env)
    sys.path.insert(0, HERE)
    print(f"$ cd {HERE}\n$ celeriac -A celery_tasks.main worker -l info -c 2", flush=True)
    worker = subprocess.Popen(
        [sys.executable, "-m", "celeriac", "-A", "celery_tasks.main", "worker", "-l", "info",
         "-c", "2"], cwd=HERE, env=env)
    try:
        from celery_tasks.sms.tasks import ccp_send_sms_code

        time.sleep(1.5)
        print("\n>>> ccp_send_sms_code.delay(mobile, sms_code) x3", flush=True)
        sent = []
        for mobile in ("13800000001", "13800000002", "13800000003"):
            sms_code = "%06d" % random.randint(0, 999999)
            sent.append((mobile, sms_code, ccp_send_sms_code.delay(mobile, sms_code)))
        for mobile, sms_code, result in sent:
            value = result.get(timeout=60)
            print(f">>> {mobile} code {sms_code}: task {result.id} -> {value} ({result.state})",
                  flush=True)
        outbox = os.path.join(work, "sms", "outbox.jsonl")
        delivered = sum(1 for _ in open(outbox))
        print(f">>> the SMS stand-in delivered {delivered} messages "
              f"(the first send failed and was retried)", flush=True)
        ok = delivered == 3 and all(r.get() == 0 for _, _, r in sent)
    finally:
        print("\n>>> stopping the worker (SIGTERM: warm shutdown)", flush=True)
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=30)
    print(f">>> worker exited with status {code}; demo {'OK' if ok and code == 0 else 'FAILED'}")
    return 0 if ok and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
