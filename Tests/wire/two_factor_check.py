#!/usr/bin/env python3
"""Two-factor enrolment and sign-in with an authenticator no Moat code wrote.

Speaks the wire with protoc-generated Python messages (as health_check.py),
then:
  - renders the enrolment QR code's SVG to PNG (rsvg-convert) and decodes it
    with zbarimg: it must yield exactly the otpauth:// URI, whose secret must
    be the secret shown for typing;
  - confirms the enrolment with a code computed by oathtool (oath-toolkit)
    from the base32 secret;
  - signs in: SignIn answers with a challenge and no session; the code that
    confirmed the enrolment is refused as reused (TOTP_CODE_REUSED); a wrong
    code is refused (TOTP_CODE_INVALID); the next step's code from oathtool
    completes the sign-in, and the session validates with the second factor
    satisfied.

Usage: two_factor_check.py SOCKET GENERATED_DIR WORK_DIR
"""
import datetime
import os
import socket
import struct
import subprocess
import sys
import urllib.parse

sys.path.insert(0, sys.argv[2])
from moat.rpc.v1 import envelope_pb2  # noqa: E402
from moat.v1 import sessions_pb2, tenants_pb2, two_factor_pb2, users_pb2  # noqa: E402

WORK = sys.argv[3]
TENANT = "wire-2fa"
EMAIL = "ada@example.com"
PASSWORD = "correct horse battery staple"


class Client:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(30)
        self.sock.connect(path)
        self.next_id = 1

    def read_exact(self, count):
        data = b""
        while len(data) < count:
            chunk = self.sock.recv(count - len(data))
            if not chunk:
                raise SystemExit("connection closed by the daemon")
            data += chunk
        return data

    def call(self, method, message, reply_type, tenant=TENANT, authorization=""):
        request = envelope_pb2.Request(
            id=self.next_id, method=method, tenant=tenant, authorization=authorization, timeout_ms=20000,
            payload=message.SerializeToString())
        self.next_id += 1
        body = request.SerializeToString()
        self.sock.sendall(struct.pack(">I", len(body)) + body)
        (length,) = struct.unpack(">I", self.read_exact(4))
        response = envelope_pb2.Response()
        response.ParseFromString(self.read_exact(length))
        assert response.id == request.id, response
        if response.status.code != envelope_pb2.OK:
            return None, response.status
        reply = reply_type()
        reply.ParseFromString(response.payload)
        return reply, response.status


def oathtool(secret, at):
    stamp = at.strftime("%Y-%m-%d %H:%M:%S UTC")
    return subprocess.run(
        ["oathtool", "--totp", "-b", secret, "--now", stamp], check=True, capture_output=True, text=True
    ).stdout.strip()


def expect_error(result, reason):
    reply, status = result
    assert reply is None and status.reason == reason, "expected %s, got %s" % (reason, status)
    print("refused as expected: %s %s" % (envelope_pb2.Code.Name(status.code), status.reason))


def main():
    moat = Client(sys.argv[1])
    created, status = moat.call(
        "/moat.v1.Tenants/Create",
        tenants_pb2.CreateTenantRequest(slug=TENANT, name="Wire & Co", owner_email=EMAIL, owner_password=PASSWORD),
        tenants_pb2.CreateTenantResponse, tenant="")
    assert created is not None, status

    signed_in, status = moat.call(
        "/moat.v1.Users/SignIn", users_pb2.SignInRequest(email=EMAIL, password=PASSWORD), users_pb2.SignInResponse)
    assert signed_in is not None and signed_in.session_token, status
    token = signed_in.session_token

    enrollment, status = moat.call(
        "/moat.v1.TwoFactor/BeginEnrollment", two_factor_pb2.BeginEnrollmentRequest(password=PASSWORD),
        two_factor_pb2.BeginEnrollmentResponse, authorization=token)
    assert enrollment is not None, status
    secret = enrollment.secret.replace(" ", "")
    assert len(secret) == 32, enrollment.secret  # 160 bits in base32

    # The URI, as the Key Uri Format wants it.
    uri = urllib.parse.urlsplit(enrollment.otpauth_uri)
    query = urllib.parse.parse_qs(uri.query)
    assert uri.scheme == "otpauth" and uri.netloc == "totp", enrollment.otpauth_uri
    assert urllib.parse.unquote(uri.path) == "/Wire & Co:" + EMAIL, uri.path
    assert query == {"secret": [secret], "issuer": ["Wire & Co"], "algorithm": ["SHA1"], "digits": ["6"],
                     "period": ["30"]}, query

    # The QR code: SVG -> PNG -> a decoder that is not ours.
    svg_path = os.path.join(WORK, "enroll.svg")
    png_path = os.path.join(WORK, "enroll.png")
    with open(svg_path, "w") as handle:
        handle.write(enrollment.qr_svg)
    subprocess.run(["rsvg-convert", "-o", png_path, svg_path], check=True)
    scanned = subprocess.run(
        ["zbarimg", "--quiet", "--raw", png_path], check=True, capture_output=True, text=True).stdout.strip()
    assert scanned == enrollment.otpauth_uri, (scanned, enrollment.otpauth_uri)
    print("QR code scanned by zbarimg: %s" % scanned.split("?")[0])

    now = datetime.datetime.now(datetime.timezone.utc)
    code = oathtool(secret, now)
    confirmed, status = moat.call(
        "/moat.v1.TwoFactor/ConfirmEnrollment", two_factor_pb2.ConfirmEnrollmentRequest(code=code),
        two_factor_pb2.ConfirmEnrollmentResponse, authorization=token)
    assert confirmed is not None, status
    assert len(confirmed.recovery_codes) == 10 and len(set(confirmed.recovery_codes)) == 10, confirmed
    print("enrolment confirmed with oathtool's code; %d recovery codes" % len(confirmed.recovery_codes))

    pending, status = moat.call(
        "/moat.v1.Users/SignIn", users_pb2.SignInRequest(email=EMAIL, password=PASSWORD), users_pb2.SignInResponse)
    assert pending is not None and pending.second_factor_required, status
    assert pending.session_token == "" and pending.challenge, pending
    print("sign-in asks for the second factor")

    def complete(code):
        return moat.call(
            "/moat.v1.Users/CompleteSignIn", users_pb2.CompleteSignInRequest(challenge=pending.challenge, code=code),
            users_pb2.SignInResponse)

    expect_error(complete(code), "TOTP_CODE_REUSED")
    wrong = "%06d" % ((int(code) + 500000) % 1000000)
    expect_error(complete(wrong), "TOTP_CODE_INVALID")

    # The next time step's code: a fresh code, inside the one-step skew.
    next_code = oathtool(secret, now + datetime.timedelta(seconds=30))
    done, status = complete(next_code)
    assert done is not None and done.session_token, status
    assert done.session.second_factor_satisfied, done.session
    expect_error(complete(next_code), "CHALLENGE_INVALID")

    validated, status = moat.call(
        "/moat.v1.Sessions/Validate", sessions_pb2.ValidateRequest(token=done.session_token),
        sessions_pb2.ValidateResponse)
    assert validated is not None and validated.second_factor_satisfied, (validated, status)
    print("sign-in completed with oathtool's next code; session validates with the second factor")
    print("two-factor wire check passed")


if __name__ == "__main__":
    main()
