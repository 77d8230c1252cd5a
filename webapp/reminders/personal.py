"""Personal channels besides email: SMS (Aliyun, Tencent Cloud, a generic HTTP gateway),
WeCom application messages and DingTalk work notifications, each a signed request to the
platform's documented HTTP API, and a sink that writes what would have gone out to files.

Every channel has the same face as EmailChannel and the robots: `send(to, content, *,
key, before_send)` sends one message or raises DeliveryError; `close()` ends its
connections. Each provider's address is a setting (host, port, http or https), so an
operator can point it at a gateway or a test server. Secrets are read from the settings,
never logged: errors carry the platform's code and message only."""

import base64
import hashlib
import hmac
import json
import math
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode, urlsplit
from urllib.request import getproxies, proxy_bypass

import urllib3

from webapp.reminders.channels import BeforeSend, DeliveryError, Withdrawn


@dataclass(frozen=True)
class Receipt:
    """What a sent message cost (SMS: billed messages) and the provider's reference."""

    cost: int = 0
    reference: str | None = None


@dataclass(frozen=True)
class SmsContent:
    """An SMS as the platforms take it: an approved template and its parameters in order;
    `text` is what the phone shows (for the sink, the gateway and the cost)."""

    kind: str
    template_code: str | None
    params: dict[str, str] = field(default_factory=dict)
    text: str = ""


class UnknownPerson(DeliveryError):
    """The platform has nobody with this mobile number (WeCom, DingTalk)."""

    def __init__(self, message: str):
        super().__init__(message, permanent=True)


def sms_parts(text: str) -> int:
    """Billed messages for one SMS in China: up to 70 characters in one, else 67 a part."""
    length = len(text)
    return 1 if length <= 70 else math.ceil(length / 67)


def national(phone: str) -> str:
    """+8613910000001 → 13910000001 (the platforms' form for numbers in China)."""
    return phone[3:] if phone.startswith("+86") else phone.lstrip("+")


def _origin(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise DeliveryError(f"not an http(s) endpoint: {endpoint!r}", permanent=True)
    return f"{parts.scheme}://{parts.netloc}"


def _retry_after(response: urllib3.BaseHTTPResponse, default: float = 60.0) -> float:
    try:
        return max(float(response.headers.get("Retry-After", default)), 1.0)
    except ValueError:
        return default


class _Http:
    """One connection pool per channel (connections kept alive; through the proxy the
    environment names for the provider, looked up once), and the error mapping. urllib3
    directly: a request costs a tenth of what a requests.Session adds around it."""

    def __init__(self, *, timeout: float):
        self.timeout = urllib3.Timeout(connect=timeout, read=timeout)
        self.pools: dict[str, urllib3.PoolManager] = {}

    def _pool(self, url: str) -> urllib3.PoolManager:
        origin = _origin(url)
        if origin not in self.pools:
            proxy = getproxies().get(urlsplit(origin).scheme)
            host = urlsplit(origin).hostname or ""
            if proxy and not proxy_bypass(host):
                self.pools[origin] = urllib3.ProxyManager(proxy, maxsize=4, retries=False)
            else:
                self.pools[origin] = urllib3.PoolManager(maxsize=4, retries=False)
        return self.pools[origin]

    def close(self) -> None:
        for pool in self.pools.values():
            pool.clear()
        self.pools.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def request(
        self,
        method: str,
        url: str,
        *,
        params: dict | None = None,
        data: bytes | dict | None = None,
        headers: dict | None = None,
    ) -> urllib3.BaseHTTPResponse:
        headers = dict(headers or {})
        if params:
            url = f"{url}?{urlencode(params)}"
        if isinstance(data, dict):
            data = urlencode(data).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        try:
            response = self._pool(url).request(
                method, url, body=data, headers=headers, timeout=self.timeout, redirect=False
            )
        except urllib3.exceptions.HTTPError as error:
            raise DeliveryError(
                f"{type(error).__name__}: cannot reach {urlsplit(url).netloc}", unreachable=True
            ) from error
        if response.status == 429:
            raise DeliveryError("throttled (HTTP 429)", retry_after=_retry_after(response))
        if response.status >= 500:
            raise DeliveryError(f"HTTP {response.status}")
        return response


def _json(response: urllib3.BaseHTTPResponse) -> dict:
    try:
        answer = json.loads(response.data)
    except ValueError as error:
        raise DeliveryError(f"HTTP {response.status}: not JSON") from error
    if not isinstance(answer, dict):
        raise DeliveryError(f"HTTP {response.status}: unexpected answer")
    return answer


# --- SMS ------------------------------------------------------------------------------------


class AliyunSms(_Http):
    """Aliyun SMS SendSms (API version 2017-05-25), RPC style with signature version 1.0:
    HMAC-SHA1 over "POST&%2F&" + the percent-encoded sorted query (help.aliyun.com
    document 56189). The template parameters are a JSON object."""

    VERSION = "2017-05-25"
    THROTTLED = {"isv.BUSINESS_LIMIT_CONTROL", "isv.DAY_LIMIT_CONTROL", "Throttling.User"}
    BAD_NUMBER = {"isv.MOBILE_NUMBER_ILLEGAL", "isv.MOBILE_COUNT_OVER_LIMIT"}

    def __init__(self, config, *, sign_name: str):
        super().__init__(timeout=config["SMS_TIMEOUT"])
        self.url = _origin(config["ALIYUN_SMS_ENDPOINT"]) + "/"
        self.region = config["ALIYUN_SMS_REGION"]
        self.key_id = config["ALIYUN_ACCESS_KEY_ID"]
        self.secret = config["ALIYUN_ACCESS_KEY_SECRET"]
        self.sign_name = sign_name
        if not (self.key_id and self.secret):
            raise DeliveryError("Aliyun SMS: no access key configured", permanent=True)

    def signed_body(self, params: dict[str, str], *, now: datetime) -> bytes:
        """The form body: the parameters, the common ones and the signature."""
        return aliyun_body(self.signed_params(params, now=now), self.secret)

    def signed_params(self, params: dict[str, str], *, now: datetime) -> dict[str, str]:
        common = {
            "AccessKeyId": self.key_id,
            "Format": "JSON",
            "RegionId": self.region,
            "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": uuid.uuid4().hex,
            "SignatureVersion": "1.0",
            "Timestamp": now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "Version": self.VERSION,
        }
        return {**common, **params}

    def send(self, to: str, content: SmsContent, *, key: str, before_send=None) -> Receipt:
        if not content.template_code:
            raise DeliveryError(f"no SMS template for {content.kind}", permanent=True)
        params = {
            "Action": "SendSms",
            "PhoneNumbers": national(to),
            "SignName": self.sign_name,
            "TemplateCode": content.template_code,
            "TemplateParam": json.dumps(content.params, ensure_ascii=False),
            "OutId": key[:64],
        }
        body = self.signed_body(params, now=datetime.now(UTC))
        if before_send is not None and not before_send():
            raise Withdrawn
        response = self.request(
            "POST",
            self.url,
            data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        answer = _json(response)
        code = str(answer.get("Code", ""))
        if code == "OK":
            return Receipt(sms_parts(f"【{self.sign_name}】{content.text}"), answer.get("BizId"))
        message = f"Aliyun {code}: {str(answer.get('Message', ''))[:200]}"
        if code in self.THROTTLED:
            raise DeliveryError(message, retry_after=60)
        raise DeliveryError(message, permanent=True)


_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")
_PERCENT = [chr(byte) if byte in _UNRESERVED else f"%{byte:02X}" for byte in range(256)]


def aliyun_percent(value: str) -> str:
    """Aliyun's percent-encoding: RFC 3986 unreserved characters kept, every other UTF-8
    byte as %XX (so a space is %20, never +)."""
    return "".join(map(_PERCENT.__getitem__, value.encode()))


def _canonical(query: dict[str, str]) -> str:
    return "&".join(
        f"{aliyun_percent(name)}={aliyun_percent(query[name])}"
        for name in sorted(query)
        if name != "Signature"
    )


def _sign(canonical: str, secret: str, method: str) -> str:
    to_sign = f"{method}&%2F&{aliyun_percent(canonical)}"
    digest = hmac.new(f"{secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def aliyun_signature(query: dict[str, str], secret: str, *, method: str) -> str:
    """Signature 1.0: HMAC-SHA1 (key: the secret and "&") of the method, the encoded path
    and the encoded canonical query, base64."""
    return _sign(_canonical(query), secret, method)


def aliyun_body(query: dict[str, str], secret: str) -> bytes:
    """The signed form body: the canonical query (already form-encoded, %20 for spaces)
    and its signature, built in one pass."""
    canonical = _canonical(query)
    signature = _sign(canonical, secret, "POST")
    return f"{canonical}&Signature={aliyun_percent(signature)}".encode()


class TencentSms(_Http):
    """Tencent Cloud SMS SendSms (API version 2021-01-11), signed with TC3-HMAC-SHA256
    (cloud.tencent.com/document/api/382/52072). Template parameters are a list in order;
    the answer's Fee is the number of billed messages."""

    VERSION = "2021-01-11"
    SERVICE = "sms"
    THROTTLED_PREFIXES = ("LimitExceeded", "RequestLimitExceeded")

    def __init__(self, config, *, sign_name: str):
        super().__init__(timeout=config["SMS_TIMEOUT"])
        self.endpoint = _origin(config["TENCENT_SMS_ENDPOINT"])
        self.host = urlsplit(self.endpoint).netloc
        self.region = config["TENCENT_SMS_REGION"]
        self.app_id = config["TENCENT_SMS_SDK_APP_ID"]
        self.secret_id = config["TENCENT_SECRET_ID"]
        self.secret_key = config["TENCENT_SECRET_KEY"]
        self.sign_name = sign_name
        if not (self.secret_id and self.secret_key and self.app_id):
            raise DeliveryError("Tencent SMS: no SecretId, SecretKey or SdkAppId", permanent=True)

    def signed_headers(self, body: bytes, *, action: str, timestamp: int) -> dict[str, str]:
        content_type = "application/json; charset=utf-8"
        authorization = tc3_authorization(
            self.secret_id,
            self.secret_key,
            host=self.host,
            content_type=content_type,
            body=body,
            timestamp=timestamp,
            service=self.SERVICE,
        )
        return {
            "Authorization": authorization,
            "Content-Type": content_type,
            "Host": self.host,
            "X-TC-Action": action,
            "X-TC-Timestamp": str(timestamp),
            "X-TC-Version": self.VERSION,
            "X-TC-Region": self.region,
        }

    def send(self, to: str, content: SmsContent, *, key: str, before_send=None) -> Receipt:
        if not content.template_code:
            raise DeliveryError(f"no SMS template for {content.kind}", permanent=True)
        payload = {
            "PhoneNumberSet": [to],
            "SmsSdkAppId": self.app_id,
            "SignName": self.sign_name,
            "TemplateId": content.template_code,
            "TemplateParamSet": list(content.params.values()),
            "SessionContext": key[:500],
        }
        body = json.dumps(payload, ensure_ascii=False).encode()
        headers = self.signed_headers(body, action="SendSms", timestamp=int(time.time()))
        if before_send is not None and not before_send():
            raise Withdrawn
        answer = _json(self.request("POST", self.endpoint + "/", data=body, headers=headers))
        response = answer.get("Response") or {}
        error = response.get("Error")
        if error:
            self._raise(str(error.get("Code", "")), str(error.get("Message", "")))
        statuses = response.get("SendStatusSet") or [{}]
        status = statuses[0]
        code = str(status.get("Code", ""))
        if code == "Ok":
            return Receipt(int(status.get("Fee") or 1), status.get("SerialNo"))
        self._raise(code, str(status.get("Message", "")))

    def _raise(self, code: str, message: str):
        text = f"Tencent {code}: {message[:200]}"
        if code.startswith(self.THROTTLED_PREFIXES):
            raise DeliveryError(text, retry_after=60)
        if code in ("InternalError", "InternalError.Timeout", "FailedOperation"):
            raise DeliveryError(text)
        raise DeliveryError(text, permanent=True)


def tc3_authorization(
    secret_id: str,
    secret_key: str,
    *,
    host: str,
    content_type: str,
    body: bytes,
    timestamp: int,
    service: str,
) -> str:
    """Tencent Cloud API 3.0's TC3-HMAC-SHA256 Authorization header for a POST to /."""
    date = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d")
    canonical_request = "\n".join(
        [
            "POST",
            "/",
            "",
            f"content-type:{content_type.lower()}\nhost:{host.lower()}\n",
            "content-type;host",
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{date}/{service}/tc3_request"
    to_sign = "\n".join(
        [
            "TC3-HMAC-SHA256",
            str(timestamp),
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )

    def _hmac(key: bytes, message: str) -> bytes:
        return hmac.new(key, message.encode(), hashlib.sha256).digest()

    signing_key = _hmac(_hmac(_hmac(f"TC3{secret_key}".encode(), date), service), "tc3_request")
    signature = hmac.new(signing_key, to_sign.encode(), hashlib.sha256).hexdigest()
    return (
        f"TC3-HMAC-SHA256 Credential={secret_id}/{scope}, "
        f"SignedHeaders=content-type;host, Signature={signature}"
    )


class GatewaySms(_Http):
    """A generic HTTP gateway (an operator's own SMS relay): a JSON POST of the number,
    the full text, the template code and parameters, signed like our webhooks:
    X-Yunketang-Signature: sha256=HMAC(secret, timestamp + "." + body)."""

    def __init__(self, config, *, sign_name: str):
        super().__init__(timeout=config["SMS_TIMEOUT"])
        self.url = config["SMS_GATEWAY_URL"]
        _origin(self.url)
        self.secret = config["SMS_GATEWAY_SECRET"]
        self.sign_name = sign_name

    def send(self, to: str, content: SmsContent, *, key: str, before_send=None) -> Receipt:
        text = f"【{self.sign_name}】{content.text}"
        body = json.dumps(
            {
                "to": to,
                "text": text,
                "template": content.template_code,
                "params": content.params,
                "id": key,
            },
            ensure_ascii=False,
        ).encode()
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if self.secret:
            signature = hmac.new(
                self.secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256
            ).hexdigest()
            headers["X-Yunketang-Timestamp"] = timestamp
            headers["X-Yunketang-Signature"] = f"sha256={signature}"
        if before_send is not None and not before_send():
            raise Withdrawn
        response = self.request("POST", self.url, data=body, headers=headers)
        if response.status >= 400:
            raise DeliveryError(f"gateway HTTP {response.status}", permanent=True)
        return Receipt(sms_parts(text))


# --- WeCom and DingTalk ---------------------------------------------------------------------


class _TokenCache:
    """Access tokens per app, shared by the threads of one process and renewed five
    minutes before they expire (both platforms give 7,200 s and ask callers to cache)."""

    MARGIN = 300.0

    def __init__(self):
        self.lock = threading.Lock()
        self.tokens: dict[tuple, tuple[str, float]] = {}

    def get(self, app: tuple) -> str | None:
        with self.lock:
            token, expires = self.tokens.get(app, (None, 0.0))
        return token if token and time.monotonic() < expires - self.MARGIN else None

    def put(self, app: tuple, token: str, expires_in: float) -> None:
        with self.lock:
            self.tokens[app] = (token, time.monotonic() + expires_in)

    def drop(self, app: tuple, token: str) -> None:
        with self.lock:
            if self.tokens.get(app, (None,))[0] == token:
                del self.tokens[app]


TOKENS = _TokenCache()


class _Messenger(_Http):
    """What WeCom and DingTalk share: a cached access token, renewed once when the
    platform says it expired; a person found by mobile number (the id is remembered by the
    caller); one text message to one person."""

    EXPIRED: set[int] = set()
    THROTTLED: set[int] = set()
    NOT_FOUND: set[int] = set()
    name = ""

    def app(self) -> tuple:
        raise NotImplementedError

    def fetch_token(self) -> tuple[str, float]:
        raise NotImplementedError

    def token(self) -> str:
        token = TOKENS.get(self.app())
        if token is None:
            token, expires_in = self.fetch_token()
            TOKENS.put(self.app(), token, expires_in)
        return token

    def call(self, path: str, payload: dict) -> dict:
        """POST to the platform with the token; renew it once if it expired meanwhile."""
        for attempt in (1, 2):
            token = self.token()
            response = self.request(
                "POST",
                f"{self.origin}{path}",
                params={"access_token": token},
                data=json.dumps(payload, ensure_ascii=False).encode(),
                headers={"Content-Type": "application/json; charset=utf-8"},
            )
            answer = _json(response)
            code = int(answer.get("errcode") or 0)
            if code in self.EXPIRED and attempt == 1:
                TOKENS.drop(self.app(), token)
                continue
            if code:
                self._raise(code, str(answer.get("errmsg", "")))
            return answer
        raise AssertionError("unreachable")

    def _raise(self, code: int, message: str):
        text = f"{self.name} {code}: {message[:200]}"
        if code in self.NOT_FOUND:
            raise UnknownPerson(text)
        if code in self.THROTTLED:
            raise DeliveryError(text, retry_after=60)
        if code == -1:  # the platform's "system busy, try again"
            raise DeliveryError(text)
        raise DeliveryError(text, permanent=True)


class WeComMessenger(_Messenger):
    """WeCom (企业微信) application messages: gettoken, user/getuserid by mobile,
    message/send of a text to one user (developer.work.weixin.qq.com documents 91039,
    95402, 90236)."""

    name = "WeCom"
    EXPIRED = {40014, 42001}  # invalid access_token, access_token expired
    THROTTLED = {45009, 45033}  # api freq out of limit, too many concurrent calls
    NOT_FOUND = {46004, 60111}  # user no exist, userid not found

    def __init__(self, config):
        super().__init__(timeout=config["PERSONAL_TIMEOUT"])
        self.origin = _origin(config["WECOM_ENDPOINT"])
        self.corp_id = config["WECOM_CORP_ID"]
        self.secret = config["WECOM_SECRET"]
        try:
            self.agent_id = int(config["WECOM_AGENT_ID"])
        except (TypeError, ValueError) as error:
            raise DeliveryError("WeCom: the agent id must be a number", permanent=True) from error

    def app(self) -> tuple:
        return ("wecom", self.origin, self.corp_id, self.agent_id)

    def fetch_token(self) -> tuple[str, float]:
        response = self.request(
            "GET",
            f"{self.origin}/cgi-bin/gettoken",
            params={"corpid": self.corp_id, "corpsecret": self.secret},
        )
        answer = _json(response)
        if int(answer.get("errcode") or 0) or not answer.get("access_token"):
            self._raise(int(answer.get("errcode") or -2), str(answer.get("errmsg", "")))
        return str(answer["access_token"]), float(answer.get("expires_in") or 7200)

    def find(self, phone: str) -> str:
        answer = self.call("/cgi-bin/user/getuserid", {"mobile": national(phone)})
        return str(answer["userid"])

    def send(self, to: str, content: str, *, key: str, before_send=None) -> Receipt:
        payload = {
            "touser": to,
            "msgtype": "text",
            "agentid": self.agent_id,
            "text": {"content": content},
            "safe": 0,
            "enable_duplicate_check": 1,
            "duplicate_check_interval": 1800,
        }
        if before_send is not None and not before_send():
            raise Withdrawn
        answer = self.call("/cgi-bin/message/send", payload)
        if answer.get("invaliduser"):
            raise UnknownPerson(f"WeCom: invalid user {to}")
        return Receipt(0, str(answer.get("msgid") or "") or None)


class DingTalkMessenger(_Messenger):
    """DingTalk (钉钉) work notifications (工作通知): gettoken, topapi/v2/user/getbymobile,
    topapi/message/corpconversation/asyncsend_v2 of a text to one user
    (open.dingtalk.com)."""

    name = "DingTalk"
    EXPIRED = {40014, 42001, 88}  # invalid token, token expired, token check failed
    THROTTLED = {90002, 90018, 143103}  # per-minute and per-app limits
    NOT_FOUND = {60121, 33012}  # no such user, invalid userid

    def __init__(self, config):
        super().__init__(timeout=config["PERSONAL_TIMEOUT"])
        self.origin = _origin(config["DINGTALK_ENDPOINT"])
        self.app_key = config["DINGTALK_APP_KEY"]
        self.app_secret = config["DINGTALK_APP_SECRET"]
        try:
            self.agent_id = int(config["DINGTALK_AGENT_ID"])
        except (TypeError, ValueError) as error:
            raise DeliveryError(
                "DingTalk: the agent id must be a number", permanent=True
            ) from error

    def app(self) -> tuple:
        return ("dingtalk", self.origin, self.app_key, self.agent_id)

    def fetch_token(self) -> tuple[str, float]:
        response = self.request(
            "GET",
            f"{self.origin}/gettoken",
            params={"appkey": self.app_key, "appsecret": self.app_secret},
        )
        answer = _json(response)
        if int(answer.get("errcode") or 0) or not answer.get("access_token"):
            self._raise(int(answer.get("errcode") or -2), str(answer.get("errmsg", "")))
        return str(answer["access_token"]), float(answer.get("expires_in") or 7200)

    def find(self, phone: str) -> str:
        answer = self.call("/topapi/v2/user/getbymobile", {"mobile": national(phone)})
        return str((answer.get("result") or {})["userid"])

    def send(self, to: str, content: str, *, key: str, before_send=None) -> Receipt:
        payload = {
            "agent_id": self.agent_id,
            "userid_list": to,
            "msg": {"msgtype": "text", "text": {"content": content}},
        }
        if before_send is not None and not before_send():
            raise Withdrawn
        answer = self.call("/topapi/message/corpconversation/asyncsend_v2", payload)
        return Receipt(0, str(answer.get("task_id") or "") or None)


# --- the sink -------------------------------------------------------------------------------


class Sink:
    """The embedded default for a personal channel: what would have been sent is written
    as one JSON file per message next to the mail sink's .eml files (see /admin/mail).
    A WeCom or DingTalk sink knows the people whose ids were remembered already."""

    def __init__(self, channel: str, folder: Path, *, sign_name: str = ""):
        self.channel = channel
        self.folder = folder
        self.sign_name = sign_name

    def close(self) -> None:
        pass

    def find(self, phone: str) -> str:
        raise UnknownPerson(f"{self.channel} sink: nobody with this number")

    def send(self, to: str, content, *, key: str, before_send: BeforeSend | None = None):
        if before_send is not None and not before_send():
            raise Withdrawn
        record = {"channel": self.channel, "to": to, "key": key}
        if isinstance(content, SmsContent):
            text = f"【{self.sign_name}】{content.text}"
            record.update(
                text=text, template=content.template_code, params=content.params, kind=content.kind
            )
            cost = sms_parts(text)
        else:
            record["text"] = str(content)
            cost = 0
        now = datetime.now(UTC)
        record["at"] = now.isoformat()
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{now:%Y%m%dT%H%M%S%f}-{self.channel}-{uuid.uuid4().hex[:8]}.json"
        (self.folder / name).write_text(json.dumps(record, ensure_ascii=False, indent=1))
        return Receipt(cost, name)
