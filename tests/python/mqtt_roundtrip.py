#!/usr/bin/env python3
"""MQTT client used by crates/palisade/tests/mqtt.rs (paho-mqtt 2.x).

Connects over TLS to a palisade `tls` listener in front of a mosquitto
broker, optionally with a device certificate, subscribes to a topic,
publishes a message to it (QoS 1) and waits for it to come back. Prints one
JSON object: {"ok": true, "payload": "..."} and exits 0, or
{"ok": false, "error": "..."} and exits 3 when the connection is refused or
the message does not come back within the timeout.
"""

import argparse
import json
import ssl
import sys
import threading

import paho.mqtt.client as mqtt


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--topic", default="devices/sensor/temperature")
    ap.add_argument("--message", default="21.5C")
    ap.add_argument("--timeout", type=float, default=10.0)
    a = ap.parse_args()

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    # palisade serves its self-signed development certificate in the test;
    # what is under test is palisade checking the device.
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if a.cert:
        ctx.load_cert_chain(a.cert, a.key)

    got = {}
    connected = threading.Event()
    subscribed = threading.Event()
    received = threading.Event()

    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="palisade-test",
                    protocol=mqtt.MQTTv311)
    c.tls_set_context(ctx)

    def on_connect(client, userdata, flags, reason_code, properties):
        got["connack"] = str(reason_code)
        if not reason_code.is_failure:
            connected.set()
            client.subscribe(a.topic, qos=1)

    def on_subscribe(client, userdata, mid, reason_codes, properties):
        subscribed.set()

    def on_message(client, userdata, msg):
        got["topic"] = msg.topic
        got["payload"] = msg.payload.decode(errors="replace")
        received.set()

    c.on_connect = on_connect
    c.on_subscribe = on_subscribe
    c.on_message = on_message
    try:
        c.connect("127.0.0.1", a.port, keepalive=30)
    except (ssl.SSLError, OSError) as e:
        print(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"}))
        return 3
    c.loop_start()
    try:
        if not connected.wait(a.timeout):
            print(json.dumps({"ok": False, "error": "no CONNACK", **got}))
            return 3
        if not subscribed.wait(a.timeout):
            print(json.dumps({"ok": False, "error": "no SUBACK", **got}))
            return 3
        c.publish(a.topic, a.message, qos=1)
        if not received.wait(a.timeout):
            print(json.dumps({"ok": False, "error": "message did not come back", **got}))
            return 3
        c.disconnect()
    finally:
        c.loop_stop()
    print(json.dumps({"ok": True, **got}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
