"""SignalWire's official helper library (`signalwire` from PyPI, which wraps an older
`twilio`) against voxbridge, unmodified: its `VoiceResponse` builds the cXML documents an
application answers with, its REST `Client` (pointed at voxbridge as a Space URL, over
HTTPS) creates, fetches and completes a call, and its `RequestValidator` checks the
`X-SignalWire-Signature` of voxbridge's callbacks. Prints `STEP name json` lines.

    python signalwire_calls.py documents FAR_END_PORT
    python signalwire_calls.py calls SPACE_URL PROJECT_ID TOKEN TO FROM STATUS_CALLBACK
    python signalwire_calls.py validate '{"url": ..., "params": {...}, "signature": ..., "token": ...}'
"""

import json
import sys

import urllib3
from signalwire.request_validator import RequestValidator
from signalwire.rest import Client
from signalwire.voice_response import Dial, VoiceResponse
from twilio.base.exceptions import TwilioRestException
from twilio.http.http_client import TwilioHttpClient

from steps import step, wait_for


def documents(port):
    # <Dial><Sip> as SignalWire documents it: codecs in order, an X- header in the URI, and
    # UDP instead of the default TLS.
    response = VoiceResponse()
    dial = Dial(timeout=10, time_limit=3)
    dial.sip("sip:carol@127.0.0.1:%s;transport=udp?X-Project=7" % port, codecs="PCMA,PCMU")
    response.append(dial)
    step("dial_sip", str(response))


def calls(space, project, token, to, from_, status_callback):
    def client(auth_token):
        # voxbridge's HTTPS listener has a self-signed certificate here.
        http = TwilioHttpClient()
        http.session.verify = False
        urllib3.disable_warnings()
        return Client(project, auth_token, signalwire_space_url=space, http_client=http)

    c = client(token)
    hold = VoiceResponse()
    hold.pause(length=30)
    call = c.calls.create(
        to=to,
        from_=from_,
        twiml=str(hold),
        status_callback=status_callback,
        status_callback_event=["initiated", "answered", "completed"],
    )
    step("created", {"sid": call.sid, "status": call.status})
    step("answered", {"status": wait_for(c, call.sid, "in-progress").status})
    c.calls(call.sid).update(status="completed")
    step("ended", {"status": wait_for(c, call.sid, "completed").status})
    try:
        client("not-the-token").calls(call.sid).fetch()
        step("denied", None)
    except TwilioRestException as e:
        step("denied", {"status": e.status, "code": e.code})


def validate(request):
    validator = RequestValidator(request["token"])
    step("valid", validator.validate(request["url"], request["params"], request["signature"]))


mode = sys.argv[1]
if mode == "documents":
    documents(sys.argv[2])
elif mode == "calls":
    calls(*sys.argv[2:8])
else:
    validate(json.loads(sys.argv[2]))
