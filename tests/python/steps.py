"""What the test scripts share: printing `STEP name json` lines for the Rust tests to read,
and waiting for a call (of the Twilio-shaped client libraries) to reach a status."""

import json
import time


def step(name, value):
    print("STEP " + name + " " + json.dumps(value), flush=True)


def wait_for(client, call_sid, status, within=20):
    """Fetches the call until its status is `status` (or `within` seconds passed)."""
    deadline = time.time() + within
    while True:
        call = client.calls(call_sid).fetch()
        if call.status == status or time.time() > deadline:
            return call
        time.sleep(0.25)
