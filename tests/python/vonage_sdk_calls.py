"""The official Vonage Python SDK (`pip install vonage`), unmodified, against voxbridge.

Run by tests/tests/vonage_sdk.rs with the SDK's API host pointed at voxbridge's HTTPS
listener (its self-signed certificate trusted through REQUESTS_CA_BUNDLE). Each step prints
one `STEP name value` line the Rust test checks; any SDK error fails the script.

usage: vonage_sdk_calls.py calls API_HOST APP_ID KEY_FILE SIP_URI SIP_URI_2 NUMBER ANSWER_URL STREAM_URL
       vonage_sdk_calls.py verify TOKEN SECRET
"""

import json
import sys
import time

from vonage import Auth, HttpClientOptions, Vonage
from vonage_voice import (
    AudioStreamOptions,
    Conversation,
    CreateCallRequest,
    Phone,
    Sip,
    Talk,
    TtsStreamOptions,
)


def step(name, value):
    print(f"STEP {name} {json.dumps(value)}", flush=True)


def wait_for(voice, uuid, status, within=15):
    deadline = time.time() + within
    while time.time() < deadline:
        info = voice.get_call(uuid)
        if info.status == status:
            return info
        time.sleep(0.2)
    raise SystemExit(f"call {uuid} never reached {status}")


def calls(api_host, app_id, key_file, sip_uri, sip_uri_2, number, answer_url, stream_url):
    with open(key_file) as f:
        key = f.read()
    client = Vonage(Auth(application_id=app_id, private_key=key), HttpClientOptions(api_host=api_host))
    voice = client.voice

    # An inline NCCO: the callee joins a conversation and stays until hung up.
    created = voice.create_call(
        CreateCallRequest(
            to=[Sip(uri=sip_uri)],
            from_=Phone(number=number),
            ncco=[Talk(text="Hello from the Vonage SDK"), Conversation(name="sdk-room")],
        )
    )
    step("created", {"uuid": created.uuid, "status": created.status, "direction": created.direction})
    info = wait_for(voice, created.uuid, "answered")
    step("get", {"uuid": info.uuid, "direction": info.direction, "to": info.to.model_dump(mode="json")})
    listed, _next_record_index = voice.list_calls()
    step("list", {"uuids": [c.uuid for c in listed]})

    voice.mute(created.uuid)
    voice.unmute(created.uuid)
    voice.earmuff(created.uuid)
    voice.unearmuff(created.uuid)
    step("muted", True)
    talk = voice.play_tts_into_call(created.uuid, TtsStreamOptions(text="Your call is important to us"))
    step("talk", talk.message)
    step("stop_talk", voice.stop_tts(created.uuid).message)
    stream = voice.play_audio_into_call(created.uuid, AudioStreamOptions(stream_url=[stream_url]))
    step("stream", stream.message)
    step("stop_stream", voice.stop_audio_stream(created.uuid).message)
    step("dtmf", voice.play_dtmf_into_call(created.uuid, dtmf="1234#").message)
    voice.transfer_call_ncco(created.uuid, [Conversation(name="sdk-room-2")])
    step("transferred", True)
    voice.hangup(created.uuid)
    wait_for(voice, created.uuid, "completed")
    step("hung_up", created.uuid)

    # The answer_url form: the NCCO is asked when the callee answers.
    second = voice.create_call(
        CreateCallRequest(to=[Sip(uri=sip_uri_2)], from_=Phone(number=number), answer_url=[answer_url])
    )
    wait_for(voice, second.uuid, "answered")
    voice.transfer_call_answer_url(second.uuid, answer_url)
    voice.hangup(second.uuid)
    wait_for(voice, second.uuid, "completed")
    step("answer_url_call", second.uuid)


def verify(token, secret):
    # What an application does with a webhook's `Authorization: Bearer` token.
    voice = Vonage(Auth(api_key="key", api_secret="secret")).voice
    step("signature", voice.verify_signature(token, secret))


if __name__ == "__main__":
    if sys.argv[1] == "calls":
        calls(*sys.argv[2:10])
    else:
        verify(*sys.argv[2:4])
