"""The official `twilio` library against voxbridge's Twilio-compatible calls API, unmodified
but for its base URL: create a call with inline TwiML and status callbacks, fetch it, list
calls, complete it, and be refused with a wrong token. Prints `STEP name json` lines.

    python twilio_calls.py BASE_URL ACCOUNT_SID AUTH_TOKEN TO FROM STATUS_CALLBACK
"""

import sys

from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from steps import step, wait_for

base, sid, token, to, from_, status_callback = sys.argv[1:7]


def client(auth_token):
    c = Client(sid, auth_token)
    c.api.base_url = base
    return c


c = client(token)
call = c.calls.create(
    to=to,
    from_=from_,
    twiml='<Response><Pause length="30"/></Response>',
    status_callback=status_callback,
    status_callback_event=["initiated", "answered", "completed"],
    timeout=20,
)
step("created", {"sid": call.sid, "status": call.status, "direction": call.direction, "to": call.to})
answered = wait_for(c, call.sid, "in-progress")
step("answered", {"status": answered.status, "account_sid": answered.account_sid})
step("listed", [listed.sid for listed in c.calls.list(limit=20)])
updated = c.calls(call.sid).update(status="completed")
step("updated", {"sid": updated.sid})
ended = wait_for(c, call.sid, "completed")
step("ended", {"status": ended.status, "duration": ended.duration})

try:
    client("not-the-token").calls(call.sid).fetch()
    step("denied", None)
except TwilioRestException as e:
    step("denied", {"status": e.status, "code": e.code})
try:
    c.calls.create(to=to, from_="+15550009999", twiml="<Response/>")
    step("refused", None)
except TwilioRestException as e:
    step("refused", {"status": e.status, "code": e.code, "message": e.msg})
try:
    c.calls("no-such-call").fetch()
    step("missing", None)
except TwilioRestException as e:
    step("missing", {"status": e.status, "code": e.code})
