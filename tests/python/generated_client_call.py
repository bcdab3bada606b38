"""A client generated from voxbridge's openapi.yaml by openapi-python-client (a standard
generator from PyPI) creates a call and hangs it up. Run by tests/tests/vonage_sdk.rs, with the
generated package `voxbridge_client` on PYTHONPATH.

usage: generated_client_call.py BASE_URL JWT SIP_URI NUMBER
"""

import json
import sys
import time

from voxbridge_client import AuthenticatedClient
from voxbridge_client.api.calls import create_call, get_call, update_call
from voxbridge_client.models import CallCreate, CallCreated, CallUpdate


def step(name, value):
    print(f"STEP {name} {json.dumps(value)}", flush=True)


base_url, jwt, sip_uri, number = sys.argv[1:5]
client = AuthenticatedClient(base_url=base_url, token=jwt)
body = CallCreate.from_dict(
    {
        "to": [{"type": "sip", "uri": sip_uri}],
        "from": {"type": "phone", "number": number},
        "ncco": [{"action": "talk", "text": "generated"}, {"action": "wait", "timeout": 60}],
    }
)
created = create_call.sync(client=client, body=body)
if not isinstance(created, CallCreated):
    raise SystemExit(f"create_call: {created}")
step("created", created.to_dict())

deadline = time.time() + 15
while time.time() < deadline:
    info = get_call.sync(created.uuid, client=client)
    if getattr(info, "status", None) == "answered":
        step("answered", info.uuid)
        break
    time.sleep(0.2)
else:
    raise SystemExit("never answered")

response = update_call.sync_detailed(created.uuid, client=client, body=CallUpdate(action="hangup"))
step("hangup", int(response.status_code))
