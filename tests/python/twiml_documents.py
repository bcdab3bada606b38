"""TwiML documents built with the official `twilio` helper library (VoiceResponse), as a
Twilio app would answer its voice URL with them; printed as `STEP name "<xml>"` lines for
tests/tests/twiml.rs to serve from the fake application's answer_url.

    python twiml_documents.py FAR_END_PORT APP_BASE_URL
"""

import json
import sys

from twilio.twiml.voice_response import Dial, Gather, VoiceResponse


def step(name, response):
    print("STEP " + name + " " + json.dumps(str(response)), flush=True)


port, app = sys.argv[1], sys.argv[2]

# <Say> then <Dial><Sip> with custom headers and UUI in the URI, a caller ID and a timeout.
dial_sip = VoiceResponse()
dial_sip.say("Connecting you.", voice="woman", language="en-US")
dial = Dial(timeout=10, caller_id="+14155550100", time_limit=5)
dial.sip(
    "sip:bob@127.0.0.1:%s?x-account=42&X-Note=a%%20b&User-to-User=56a390f3d2b7310023a2;encoding=hex" % port
)
dial_sip.append(dial)
step("dial_sip", dial_sip)

busy = VoiceResponse()
busy.reject(reason="busy")
step("reject_busy", busy)

# <Gather> with a nested prompt: the digits go to its action; the verb after it runs only
# when no digit came.
gather = VoiceResponse()
prompt = Gather(num_digits=3, timeout=10, action=app + "/gathered", method="POST")
prompt.say("Enter your three digit code.")
gather.append(prompt)
gather.say("We did not hear you.")
step("gather", gather)

# <Gather input="speech">: the caller's words, transcribed, go to the action.
gather_speech = VoiceResponse()
heard = Gather(
    input="speech",
    language="en-GB",
    hints="sales, support",
    speech_timeout="1",
    timeout=5,
    action=app + "/heard",
    method="POST",
)
heard.say("Say sales or support.")
gather_speech.append(heard)
step("gather_speech", gather_speech)

thanks = VoiceResponse()
thanks.say("Thank you.")
thanks.hangup()
step("thanks", thanks)

# <Dial action>: the far end's outcome (here 486 with an X- header) goes to the action.
dial_action = VoiceResponse()
dialled = Dial(action=app + "/dialled", timeout=10)
dialled.sip("sip:busy@127.0.0.1:%s" % port)
dial_action.append(dialled)
dial_action.say("Never reached: the action's document replaces this one.")
step("dial_action", dial_action)

hang_up = VoiceResponse()
hang_up.hangup()
step("hang_up", hang_up)

# <Sip username password codecs> (codecs is SignalWire's cXML attribute; the library writes
# any keyword as an attribute): the far end's 401 is answered, PCMA is offered first.
digest = VoiceResponse()
guarded = Dial(timeout=10, time_limit=3)
guarded.sip(
    "sip:alice@127.0.0.1:%s?X-User-to-User=56a390f3d2b7310023a2" % port,
    username="alice",
    password="s3cr3t",
    codecs="PCMA,PCMU",
)
digest.append(guarded)
step("dial_digest", digest)

# <Sip url>: a screening document run on the callee once it answers; here it hangs up.
screened = VoiceResponse()
screening = Dial(timeout=10)
screening.sip("sip:bob@127.0.0.1:%s" % port, url=app + "/screen")
screened.append(screening)
step("screened", screened)

# <Record>: a voicemail of at most 3 s, without the beep; its action gets the recording.
voicemail = VoiceResponse()
voicemail.record(
    max_length=3,
    play_beep=False,
    action=app + "/recorded",
    method="POST",
    recording_status_callback=app + "/recording-status",
)
step("voicemail", voicemail)

# <Sip statusCallback>: the callee leg's own status callbacks, for the events chosen.
leg_status = VoiceResponse()
watched = Dial(timeout=10, time_limit=3)
watched.sip(
    "sip:bob@127.0.0.1:%s" % port,
    status_callback=app + "/leg",
    status_callback_event="initiated ringing answered completed",
    status_callback_method="POST",
)
leg_status.append(watched)
step("leg_status", leg_status)

# <Dial record>: the dial's conversation from the answer, one channel per party; the
# action gets the recording, the status callback hears it is written.
recorded_dial = VoiceResponse()
taped = Dial(
    timeout=10,
    time_limit=3,
    record="record-from-answer-dual",
    action=app + "/dial-recorded",
    recording_status_callback=app + "/dial-recording-status",
)
taped.sip("sip:bob@127.0.0.1:%s" % port)
recorded_dial.append(taped)
step("recorded_dial", recorded_dial)
