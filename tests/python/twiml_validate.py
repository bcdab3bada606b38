"""Checks a callback voxbridge signed, with the official `twilio` helper library's request
validator, as a Twilio app guards its webhooks:

    python twiml_validate.py '{"url": ..., "params": {...}, "signature": ..., "auth_token": ...}'

Prints `STEP valid true|false`.
"""

import json
import sys

from twilio.request_validator import RequestValidator

request = json.loads(sys.argv[1])
validator = RequestValidator(request["auth_token"])
valid = validator.validate(request["url"], request["params"], request["signature"])
print("STEP valid " + json.dumps(valid), flush=True)
