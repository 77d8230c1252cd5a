"""Local stand-ins for the messaging platforms, checking requests the way the real
services do, from their documentation: Aliyun SMS (RPC signature 1.0, HMAC-SHA1), Tencent
Cloud SMS (TC3-HMAC-SHA256), WeCom application messages and DingTalk work notifications
(access tokens that expire, people found by mobile number). Each answers success and the
documented errors: a wrong signature, an expired timestamp or token, a template parameter
too long, an invalid number, an unknown person, throttling."""

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from urllib.parse import quote

from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

MOBILE = re.compile(r"1[3-9]\d{9}")


def _json(data, status=200) -> Response:
    return Response(
        json.dumps(data, ensure_ascii=False), status=status, content_type="application/json"
    )


class _Quiet(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass


class Platform:
    """A WSGI app on 127.0.0.1 in a thread; `received` lists what it accepted."""

    def __init__(self):
        self.received: list[dict] = []
        self.requests = 0
        self.lock = threading.Lock()
        self.server = make_server("127.0.0.1", 0, self, threaded=True, request_handler=_Quiet)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def __call__(self, environ, start_response):
        request = Request(environ)
        with self.lock:
            self.requests += 1
        return self.handle(request)(environ, start_response)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --- Aliyun ---------------------------------------------------------------------------------


def _aliyun_percent(value: str) -> str:
    return quote(value, safe="-_.~")


class AliyunSms(Platform):
    """dysmsapi SendSms, version 2017-05-25: form POST to /, signature 1.0 (HMAC-SHA1 of
    "POST&%2F&" + the encoded sorted query, key = secret + "&"); a timestamp more than 15
    minutes off is expired, a nonce may be used once; each template variable at most
    `param_limit` characters (35 for notification templates)."""

    def __init__(self, *, key_id="LTAI-test", secret="aliyun-secret", sign_name="云课堂"):
        self.key_id, self.secret, self.sign_name = key_id, secret, sign_name
        self.templates: dict[str, tuple[str, ...]] = {}
        self.param_limit = 35
        self.nonces: set[str] = set()
        self.per_minute = 1_000_000  # messages to one number a minute before throttling
        self.sent_times: dict[str, list[float]] = defaultdict(list)
        self.throttle_all = False
        super().__init__()

    def error(self, code, message, status=200):
        return _json({"RequestId": secrets.token_hex(8), "Code": code, "Message": message}, status)

    def handle(self, request: Request) -> Response:
        if request.method != "POST" or request.path != "/":
            return self.error("InvalidAction.NotFound", "Specified api is not found", 404)
        query = {name: request.form[name] for name in request.form}
        for name in (
            "AccessKeyId",
            "Action",
            "SignatureMethod",
            "SignatureNonce",
            "SignatureVersion",
            "Timestamp",
            "Version",
            "Signature",
        ):
            if name not in query:
                return self.error(f"MissingParameter.{name}", f"{name} is mandatory", 400)
        if query["AccessKeyId"] != self.key_id:
            return self.error(
                "InvalidAccessKeyId.NotFound", "Specified access key is not found.", 404
            )
        if query["SignatureMethod"] != "HMAC-SHA1" or query["SignatureVersion"] != "1.0":
            return self.error(
                "InvalidSignatureMethod", "Specified signature method is not supported.", 400
            )
        try:
            stamp = datetime.strptime(query["Timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except ValueError:
            return self.error("InvalidTimeStamp.Format", "Specified time stamp is not valid.", 400)
        if abs((datetime.now(UTC) - stamp).total_seconds()) > 15 * 60:
            return self.error(
                "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.", 400
            )
        canonical = "&".join(
            f"{_aliyun_percent(k)}={_aliyun_percent(query[k])}"
            for k in sorted(query)
            if k != "Signature"
        )
        to_sign = f"POST&%2F&{_aliyun_percent(canonical)}"
        expected = base64.b64encode(
            hmac.new(f"{self.secret}&".encode(), to_sign.encode(), hashlib.sha1).digest()
        ).decode()
        if not hmac.compare_digest(expected, query["Signature"]):
            return self.error(
                "SignatureDoesNotMatch",
                "Specified signature is not matched with our calculation.",
                400,
            )
        with self.lock:
            if query["SignatureNonce"] in self.nonces:
                return self.error(
                    "SignatureNonceUsed", "Specified signature nonce was used already.", 400
                )
            self.nonces.add(query["SignatureNonce"])
        if query["Action"] != "SendSms" or query["Version"] != "2017-05-25":
            return self.error("InvalidAction.NotFound", "Specified api is not found", 404)
        return self.send_sms(query)

    def send_sms(self, query) -> Response:
        number = query.get("PhoneNumbers", "")
        if not MOBILE.fullmatch(number):
            return self.error("isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")
        if query.get("SignName") != self.sign_name:
            return self.error("isv.SMS_SIGNATURE_ILLEGAL", "该账号下找不到对应签名")
        variables = self.templates.get(query.get("TemplateCode", ""))
        if variables is None:
            return self.error("isv.SMS_TEMPLATE_ILLEGAL", "该账号下找不到对应模板")
        try:
            params = json.loads(query.get("TemplateParam") or "{}")
        except ValueError:
            return self.error("isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值")
        if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
            return self.error("isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值")
        if set(variables) - set(params):
            return self.error("isv.TEMPLATE_MISSING_PARAMETERS", "模板变量缺少对应参数值")
        if any(len(value) > self.param_limit for value in params.values()):
            return self.error("isv.PARAM_LENGTH_LIMIT", "参数超出长度限制")
        now = time.monotonic()
        with self.lock:
            recent = [t for t in self.sent_times[number] if now - t < 60]
            if self.throttle_all or len(recent) >= self.per_minute:
                return self.error("isv.BUSINESS_LIMIT_CONTROL", "触发号码分钟级流控Permits:1")
            recent.append(now)
            self.sent_times[number] = recent
            self.received.append(
                {
                    "to": number,
                    "template": query["TemplateCode"],
                    "params": params,
                    "sign": query["SignName"],
                    "out_id": query.get("OutId"),
                }
            )
        return _json(
            {
                "RequestId": secrets.token_hex(8),
                "Code": "OK",
                "Message": "OK",
                "BizId": f"{int(time.time() * 1000)}^0",
            }
        )


# --- Tencent Cloud --------------------------------------------------------------------------


class TencentSms(Platform):
    """sms SendSms, version 2021-01-11: JSON POST to / with TC3-HMAC-SHA256 over
    content-type and host; a timestamp more than 5 minutes off is expired; per number
    SendStatusSet answers (Ok, IncorrectPhoneNumber, TemplateParameterLengthLimit,
    PhoneNumberThirtySecondLimit) with the Fee billed."""

    def __init__(
        self,
        *,
        secret_id="AKID-test",
        secret_key="tencent-key",
        app_id="1400006666",
        sign_name="云课堂",
    ):
        self.secret_id, self.secret_key, self.app_id = secret_id, secret_key, app_id
        self.sign_name = sign_name
        self.templates: dict[str, tuple[str, str]] = {}  # id → (text with {1}…, kind)
        self.param_limit = 12
        self.throttle_numbers: set[str] = set()
        super().__init__()

    def error(self, code, message):
        return _json(
            {
                "Response": {
                    "Error": {"Code": code, "Message": message},
                    "RequestId": secrets.token_hex(8),
                }
            }
        )

    def handle(self, request: Request) -> Response:
        if request.method != "POST" or request.path != "/":
            return self.error("InvalidAction", "The requested action does not exist.")
        authorization = request.headers.get("Authorization", "")
        match = re.fullmatch(
            r"TC3-HMAC-SHA256 Credential=([^/]+)/(\d{4}-\d{2}-\d{2})/([a-z]+)/tc3_request, "
            r"SignedHeaders=([a-z;-]+), Signature=([0-9a-f]{64})",
            authorization,
        )
        if not match:
            return self.error("AuthFailure.InvalidAuthorization", "Authorization is invalid.")
        secret_id, date, service, signed_headers, signature = match.groups()
        if secret_id != self.secret_id:
            return self.error("AuthFailure.SecretIdNotFound", "The SecretId is not found.")
        try:
            timestamp = int(request.headers.get("X-TC-Timestamp", ""))
        except ValueError:
            return self.error("MissingParameter", "X-TC-Timestamp is missing.")
        if abs(time.time() - timestamp) > 300:
            return self.error("AuthFailure.SignatureExpire", "Signature expired.")
        body = request.get_data()
        headers = {name: request.headers.get(name, "") for name in signed_headers.split(";")}
        canonical_headers = "".join(
            f"{name}:{value.strip().lower()}\n" for name, value in headers.items()
        )
        canonical = "\n".join(
            ["POST", "/", "", canonical_headers, signed_headers, hashlib.sha256(body).hexdigest()]
        )
        scope = f"{date}/{service}/tc3_request"
        to_sign = "\n".join(
            [
                "TC3-HMAC-SHA256",
                str(timestamp),
                scope,
                hashlib.sha256(canonical.encode()).hexdigest(),
            ]
        )

        def sign(key, message):
            return hmac.new(key, message.encode(), hashlib.sha256).digest()

        key = sign(sign(sign(f"TC3{self.secret_key}".encode(), date), service), "tc3_request")
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if (
            not hmac.compare_digest(expected, signature)
            or service != "sms"
            or (datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d") != date)
        ):
            return self.error(
                "AuthFailure.SignatureFailure", "The provided credentials could not be validated."
            )
        if request.headers.get("X-TC-Action") != "SendSms":
            return self.error("InvalidAction", "The requested action does not exist.")
        if request.headers.get("X-TC-Version") != "2021-01-11":
            return self.error("NoSuchVersion", "The API version does not exist.")
        try:
            payload = json.loads(body)
        except ValueError:
            return self.error("InvalidParameter", "The body is not JSON.")
        if payload.get("SmsSdkAppId") != self.app_id:
            return self.error("InvalidParameterValue.SdkAppIdNotExist", "SdkAppId does not exist.")
        if payload.get("SignName") != self.sign_name:
            return self.error(
                "FailedOperation.SignatureIncorrectOrUnapproved", "签名未审批或格式错误"
            )
        template = self.templates.get(str(payload.get("TemplateId")))
        if template is None:
            return self.error(
                "FailedOperation.TemplateIncorrectOrUnapproved", "模板未审批或内容不匹配"
            )
        params = payload.get("TemplateParamSet") or []
        if len(params) != template[0].count("{"):
            return self.error(
                "FailedOperation.TemplateParamSetNotMatchApprovedTemplate",
                "请求内容与审核通过的模板内容不匹配",
            )
        statuses = []
        for number in payload.get("PhoneNumberSet") or []:
            statuses.append(self.one(number, payload, template, params))
        return _json({"Response": {"SendStatusSet": statuses, "RequestId": secrets.token_hex(8)}})

    def one(self, number, payload, template, params) -> dict:
        status = {
            "SerialNo": "",
            "PhoneNumber": number,
            "Fee": 0,
            "SessionContext": payload.get("SessionContext", ""),
            "IsoCode": "CN",
        }
        if not re.fullmatch(r"\+861[3-9]\d{9}", number):
            return {
                **status,
                "Code": "InvalidParameterValue.IncorrectPhoneNumber",
                "Message": "手机号格式错误",
            }
        if any(len(str(value)) > self.param_limit for value in params):
            return {
                **status,
                "Code": "InvalidParameterValue.TemplateParameterLengthLimit",
                "Message": "单个模板变量字符数超过12个",
            }
        if number in self.throttle_numbers:
            return {
                **status,
                "Code": "LimitExceeded.PhoneNumberThirtySecondLimit",
                "Message": "单个手机号30秒内下发短信条数超过设定的上限",
            }
        text = template[0]
        for index, value in enumerate(params, start=1):
            text = text.replace("{" + str(index) + "}", str(value))
        text = f"【{payload['SignName']}】{text}"
        fee = 1 if len(text) <= 70 else -(-len(text) // 67)
        with self.lock:
            self.received.append(
                {"to": number, "template": payload["TemplateId"], "params": params, "text": text}
            )
        return {
            **status,
            "SerialNo": secrets.token_hex(6),
            "Fee": fee,
            "Code": "Ok",
            "Message": "send success",
        }


# --- WeCom and DingTalk ---------------------------------------------------------------------


class _Directory(Platform):
    """What WeCom and DingTalk share: tokens issued for the right credentials, which the
    test may expire; people by mobile number."""

    def __init__(self):
        self.people: dict[str, str] = {}  # national mobile → user id
        self.tokens: dict[str, float] = {}  # token → expires (monotonic)
        self.token_requests = 0
        self.throttled = False
        super().__init__()

    def issue_token(self) -> dict:
        token = secrets.token_hex(16)
        with self.lock:
            self.tokens[token] = time.monotonic() + 7200
            self.token_requests += 1
        return {"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": 7200}

    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens = dict.fromkeys(self.tokens, 0.0)

    def token_state(self, request) -> str:
        token = request.args.get("access_token", "")
        with self.lock:
            expires = self.tokens.get(token)
        if expires is None:
            return "invalid"
        return "expired" if expires <= time.monotonic() else "ok"


class WeCom(_Directory):
    """qyapi: /cgi-bin/gettoken, /cgi-bin/user/getuserid, /cgi-bin/message/send."""

    def __init__(self, *, corp_id="ww-test", secret="wecom-secret", agent_id=1000002):
        self.corp_id, self.secret, self.agent_id = corp_id, secret, agent_id
        super().__init__()

    def handle(self, request: Request) -> Response:
        if request.path == "/cgi-bin/gettoken":
            if request.args.get("corpid") != self.corp_id:
                return _json({"errcode": 40013, "errmsg": "invalid corpid"})
            if request.args.get("corpsecret") != self.secret:
                return _json({"errcode": 40001, "errmsg": "invalid credential"})
            return _json(self.issue_token())
        state = self.token_state(request)
        if state == "invalid":
            return _json({"errcode": 40014, "errmsg": "invalid access_token"})
        if state == "expired":
            return _json({"errcode": 42001, "errmsg": "access_token expired"})
        try:
            payload = json.loads(request.get_data() or b"{}")
        except ValueError:
            return _json({"errcode": 47001, "errmsg": "data format error"})
        if request.path == "/cgi-bin/user/getuserid":
            userid = self.people.get(str(payload.get("mobile", "")))
            if userid is None:
                return _json({"errcode": 46004, "errmsg": "user no exist"})
            return _json({"errcode": 0, "errmsg": "ok", "userid": userid})
        if request.path == "/cgi-bin/message/send":
            if self.throttled:
                return _json({"errcode": 45009, "errmsg": "api freq out of limit"})
            if payload.get("agentid") != self.agent_id:
                return _json({"errcode": 40056, "errmsg": "invalid agentid"})
            if payload.get("msgtype") != "text" or not (payload.get("text") or {}).get("content"):
                return _json({"errcode": 41009, "errmsg": "missing content"})
            touser = str(payload.get("touser", ""))
            if touser not in self.people.values():
                return _json({"errcode": 81013, "errmsg": "user & party & tag all invalid"})
            with self.lock:
                self.received.append({"to": touser, "text": payload["text"]["content"]})
            return _json(
                {"errcode": 0, "errmsg": "ok", "invaliduser": "", "msgid": secrets.token_hex(8)}
            )
        return _json({"errcode": 60011, "errmsg": "no privilege"})


class DingTalk(_Directory):
    """oapi: /gettoken, /topapi/v2/user/getbymobile, asyncsend_v2 work notifications."""

    def __init__(self, *, app_key="ding-test", app_secret="dingtalk-secret", agent_id=2000001):
        self.app_key, self.app_secret, self.agent_id = app_key, app_secret, agent_id
        super().__init__()

    def handle(self, request: Request) -> Response:
        if request.path == "/gettoken":
            if (request.args.get("appkey"), request.args.get("appsecret")) != (
                self.app_key,
                self.app_secret,
            ):
                return _json({"errcode": 40089, "errmsg": "不合法的corpid或corpsecret"})
            return _json(self.issue_token())
        state = self.token_state(request)
        if state == "invalid":
            return _json({"errcode": 40014, "errmsg": "不合法的access_token"})
        if state == "expired":
            return _json({"errcode": 42001, "errmsg": "access_token超时"})
        try:
            payload = json.loads(request.get_data() or b"{}")
        except ValueError:
            return _json({"errcode": 400002, "errmsg": "参数错误"})
        if request.path == "/topapi/v2/user/getbymobile":
            userid = self.people.get(str(payload.get("mobile", "")))
            if userid is None:
                return _json({"errcode": 60121, "errmsg": "找不到该用户"})
            return _json({"errcode": 0, "errmsg": "ok", "result": {"userid": userid}})
        if request.path == "/topapi/message/corpconversation/asyncsend_v2":
            if self.throttled:
                return _json({"errcode": 90018, "errmsg": "当前请求被限流"})
            if payload.get("agent_id") != self.agent_id:
                return _json({"errcode": 40056, "errmsg": "不合法的agentid"})
            users = [u for u in str(payload.get("userid_list", "")).split(",") if u]
            if not users or any(u not in self.people.values() for u in users):
                return _json({"errcode": 33012, "errmsg": "无效的userid"})
            message = payload.get("msg") or {}
            with self.lock:
                for user in users:
                    self.received.append({"to": user, "text": message["text"]["content"]})
            return _json({"errcode": 0, "errmsg": "ok", "task_id": int(time.time() * 1000)})
        return _json({"errcode": 404, "errmsg": "not found"})


class SmsGateway(Platform):
    """An operator's own SMS relay as the generic gateway setting describes it: a JSON POST
    signed with X-Yunketang-Signature = sha256=HMAC(secret, timestamp + "." + body); a
    timestamp more than 5 minutes off or a wrong signature is refused with 401."""

    def __init__(self, *, secret="gateway-secret"):
        self.secret = secret
        super().__init__()

    def handle(self, request: Request) -> Response:
        body = request.get_data()
        timestamp = request.headers.get("X-Yunketang-Timestamp", "")
        signature = request.headers.get("X-Yunketang-Signature", "")
        expected = "sha256=" + hmac.new(
            self.secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256
        ).hexdigest()
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > 300:
            return _json({"error": "stale"}, 401)
        if not hmac.compare_digest(expected, signature):
            return _json({"error": "bad signature"}, 401)
        with self.lock:
            self.received.append(json.loads(body))
        return _json({"ok": True})
