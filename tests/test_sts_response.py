"""parse_sts_response: golden bodies and hostile upstream answers (attacks 50-60, 79)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aws_iam_backend import errors
from aws_iam_backend.login.messages import STSResponse
from aws_iam_backend.login.parse import parse_sts_response

NS = "https://sts.amazonaws.com/doc/2011-06-15/"
PARSE_ERROR = "error making upstream request: error parsing STS response"
INVALID_BODY = "error making upstream request: body of GetCallerIdentity is invalid"

USER_ARN = "arn:aws:iam::123456789012:user/path/alice"
ROLE_ARN = "arn:aws:sts::123456789012:assumed-role/app/i-0abc"


def result(arn: str = USER_ARN, user_id: str = "AIDAEXAMPLE", account: str = "123456789012") -> str:
    return (
        f"<GetCallerIdentityResult><Arn>{arn}</Arn><UserId>{user_id}</UserId>"
        f"<Account>{account}</Account></GetCallerIdentityResult>"
    )


def document(inner: str | None = None, root: str = "GetCallerIdentityResponse") -> str:
    body = result() if inner is None else inner
    return (
        f'<{root} xmlns="{NS}">{body}'
        "<ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata>"
        f"</{root}>\n"
    )


def response(
    body: str | bytes, status: int = 200, content_type: str | None = "text/xml"
) -> STSResponse:
    raw = body.encode() if isinstance(body, str) else body
    headers = (("content-type", content_type),) if content_type is not None else ()
    return STSResponse(status=status, headers=headers, body=raw)


# AWS's real answer (pretty-printed), and moto's (compact, fields in another order).
AWS_GOLDEN = f"""<GetCallerIdentityResponse xmlns="{NS}">
  <GetCallerIdentityResult>
    <Arn>{ROLE_ARN}</Arn>
    <UserId>AROAEXAMPLEID:i-0abc</UserId>
    <Account>123456789012</Account>
  </GetCallerIdentityResult>
  <ResponseMetadata>
    <RequestId>01234567-89ab-cdef-0123-456789abcdef</RequestId>
  </ResponseMetadata>
</GetCallerIdentityResponse>
"""
MOTO_GOLDEN = (
    f'<GetCallerIdentityResponse xmlns="{NS}"><GetCallerIdentityResult>'
    "<UserId>zmwzwgj4zc82xeiwasge</UserId><Account>123456789012</Account>"
    "<Arn>arn:aws:iam::123456789012:user/moto-admin</Arn></GetCallerIdentityResult>"
    "<ResponseMetadata><RequestId>1RyNYipq</RequestId></ResponseMetadata>"
    "</GetCallerIdentityResponse>"
)


def test_aws_golden() -> None:
    identity = parse_sts_response(response(AWS_GOLDEN), expected_partition="aws")
    assert identity.arn == ROLE_ARN
    assert identity.user_id == "AROAEXAMPLEID:i-0abc"
    assert identity.account == "123456789012"
    assert identity.request_id == "01234567-89ab-cdef-0123-456789abcdef"


def test_moto_golden_with_xml_declaration() -> None:
    body = '<?xml version="1.0" encoding="UTF-8"?>\n' + MOTO_GOLDEN
    identity = parse_sts_response(response(body))
    assert identity.arn == "arn:aws:iam::123456789012:user/moto-admin"
    assert identity.user_id == "zmwzwgj4zc82xeiwasge"
    assert identity.request_id == "1RyNYipq"


def test_request_id_optional() -> None:
    body = f'<GetCallerIdentityResponse xmlns="{NS}">{result()}</GetCallerIdentityResponse>'
    assert parse_sts_response(response(body)).request_id == ""


def test_unparseable_arn_left_to_caller() -> None:
    root_arn = "arn:aws:iam::123456789012:root"
    identity = parse_sts_response(response(document(result(arn=root_arn))))
    assert identity.arn == root_arn


@pytest.mark.parametrize(
    "content_type",
    ["text/xml", "text/xml; charset=utf-8", "TEXT/XML", "Text/Xml ;charset=UTF-8", " text/xml"],
)
def test_media_type_accepted(content_type: str) -> None:
    assert parse_sts_response(response(document(), content_type=content_type)).arn == USER_ARN


@pytest.mark.parametrize(
    "content_type",
    ["application/xml", "application/json", "text/html", "text/xml+evil", "", None, "text/xmlx"],
)
def test_media_type_rejected(content_type: str | None) -> None:
    with pytest.raises(errors.UpstreamError) as info:
        parse_sts_response(response(document(), content_type=content_type))
    assert info.value.message == INVALID_BODY
    assert info.value.status == 502


HOSTILE_BODIES = {
    "json with embedded xml": '{"x": "' + document().replace('"', '\\"') + '"}',
    "junk before root": "x" + document(),
    "junk after root": document() + "junk",
    "two documents": document() + document(),
    "wrong namespace": document().replace(NS, "https://evil.example/"),
    "no namespace": document().replace(f' xmlns="{NS}"', ""),
    "assume role root": document(
        f"<AssumeRoleResult><AssumedRoleUser><Arn>{USER_ARN}</Arn></AssumedRoleUser>"
        "</AssumeRoleResult>",
        root="AssumeRoleResponse",
    ),
    "nested arn": document(
        "<GetCallerIdentityResult><Wrapper><Arn>arn:aws:iam::123456789012:role/admin</Arn>"
        "</Wrapper><UserId>AIDA</UserId><Account>123456789012</Account>"
        "</GetCallerIdentityResult>"
    ),
    "arn with child element": document(result(arn=f"{USER_ARN}<b/>")),
    "zero results": document(""),
    "two results": document(result() + result(arn="arn:aws:iam::123456789012:role/admin")),
    "two arns": document(result().replace("</Arn>", "</Arn><Arn>arn:aws:iam::1:user/x</Arn>")),
    "missing arn": document(result().replace(f"<Arn>{USER_ARN}</Arn>", "")),
    "empty arn": document(result(arn="")),
    "empty user id": document(result(user_id="")),
    "empty account": document(result(account="")),
    "whitespace arn": document(result(arn=f" {USER_ARN}")),
    "control char in user id": document(result(user_id="AIDA&#10;X")),
    "two metadata": document(result() + "<ResponseMetadata/>"),
    "short account": document(result(account="12345678901")),
    "non-ascii digits": document(result(account="١٢٣٤٥٦٧٨٩٠١٢")),
    "account mismatch": document(result(account="111111111111")),
    "arn account mismatch": document(result(arn="arn:aws:iam::222222222222:user/a")),
    "session mismatch": document(result(arn=ROLE_ARN, user_id="AROAEXAMPLEID:other")),
    "user id without session": document(result(arn=ROLE_ARN, user_id="AIDAEXAMPLE")),
    "doctype": '<?xml version="1.0"?><!DOCTYPE x []>' + document(),
    "billion laughs": (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
        '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
        + document(result(arn="&lol3;"))
    ),
    "external entity": (
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
        + document(result(arn="&xxe;"))
    ),
    "parameter entity": (
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY % p SYSTEM "http://127.0.0.1:1/x">%p;]>'
        + document()
    ),
    "undefined entity": document(result(arn="&xxe;")),
    "empty body": "",
    "truncated": document()[:-40],
}


@pytest.mark.parametrize("body", HOSTILE_BODIES.values(), ids=HOSTILE_BODIES.keys())
def test_hostile_bodies_rejected(body: str) -> None:
    with pytest.raises(errors.UpstreamError) as info:
        parse_sts_response(response(body), expected_partition="aws")
    assert type(info.value) is errors.UpstreamError
    assert info.value.message == PARSE_ERROR


def test_partition_must_match_endpoint() -> None:
    gov = document(result(arn="arn:aws-us-gov:iam::123456789012:user/alice"))
    assert parse_sts_response(response(gov), expected_partition="aws-us-gov").account
    with pytest.raises(errors.UpstreamError) as info:
        parse_sts_response(response(gov), expected_partition="aws")
    assert info.value.message == PARSE_ERROR


AWS_ERROR = f"""<ErrorResponse xmlns="{NS}">
  <Error>
    <Type>Sender</Type>
    <Code>SignatureDoesNotMatch</Code>
    <Message>The request signature we calculated does not match the signature you provided.
The Canonical String for this request should have been
'POST
/
x-amz-security-token:SECRET-SESSION-TOKEN'</Message>
  </Error>
  <RequestId>req</RequestId>
</ErrorResponse>
"""
MOTO_ERROR = (
    '<?xml version="1.0" encoding="utf-8"?>\n<ErrorResponse><Errors><Error>'
    "<Code>InvalidClientTokenId</Code><Message>The security token included in the request "
    "is invalid.</Message><Type>Sender</Type></Error></Errors></ErrorResponse>"
)


def test_aws_4xx_error_summarised_without_echo() -> None:
    with pytest.raises(errors.InvalidRequestError) as info:
        parse_sts_response(response(AWS_ERROR, status=403))
    assert info.value.status == 400
    assert info.value.message == (
        "error making upstream request: received error code 403 from STS: "
        "SignatureDoesNotMatch: The request signature we calculated does not match the "
        "signature you provided."
    )
    assert "SECRET" not in info.value.message


def test_moto_error_with_text_html() -> None:
    with pytest.raises(errors.InvalidRequestError) as info:
        parse_sts_response(response(MOTO_ERROR, status=403, content_type="text/html"))
    assert info.value.message == (
        "error making upstream request: received error code 403 from STS: "
        "InvalidClientTokenId: The security token included in the request is invalid."
    )


def test_error_message_capped_and_cleaned() -> None:
    body = (
        "<ErrorResponse><Error><Code>Bad\u202eCode</Code>"
        f"<Message>{'m' * 1000}</Message></Error></ErrorResponse>"
    )
    with pytest.raises(errors.InvalidRequestError) as info:
        parse_sts_response(response(body, status=400))
    summary = info.value.message.split("from STS: ", 1)[1]
    assert summary.startswith("BadCode: mmm")
    assert len(summary) < 220


@pytest.mark.parametrize(
    "body", ["<html>oops</html>", "not xml", "<ErrorResponse/>", "<ErrorResponse><Error/>"]
)
def test_unparseable_error_body_omitted(body: str) -> None:
    with pytest.raises(errors.InvalidRequestError) as info:
        parse_sts_response(response(body, status=400))
    assert info.value.message == "error making upstream request: received error code 400 from STS"


# 429 is UpstreamThrottledError (tests/test_ratelimit.py::test_sts_throttling_is_distinct)
@pytest.mark.parametrize("status", [500, 502, 503, 504, 301, 302, 307, 308, 100, 204, 201])
def test_non_client_errors_are_upstream(status: int) -> None:
    with pytest.raises(errors.UpstreamError) as info:
        parse_sts_response(response(AWS_ERROR, status=status))
    assert type(info.value) is errors.UpstreamError
    assert info.value.message.startswith(
        f"error making upstream request: received error code {status} from STS"
    )


def test_ok_status_with_error_document_rejected() -> None:
    with pytest.raises(errors.UpstreamError) as info:
        parse_sts_response(response(AWS_ERROR))
    assert info.value.message == PARSE_ERROR


@given(
    body=st.one_of(
        st.binary(max_size=300),
        st.text(max_size=300).map(str.encode),
        st.sampled_from([*HOSTILE_BODIES.values(), AWS_ERROR, MOTO_ERROR]).map(str.encode),
    ),
    status=st.integers(min_value=0, max_value=999),
    content_type=st.one_of(st.none(), st.text(max_size=30), st.just("text/xml")),
)
def test_only_backend_errors(body: bytes, status: int, content_type: str | None) -> None:
    with contextlib.suppress(errors.BackendError):
        parse_sts_response(response(body, status=status, content_type=content_type))


# ---------------------------------------------------------------- the hardened parser
# parse_sts_response parses 200 bodies with a bare expat parser configured like
# defusedxml's fromstring(forbid_dtd=True). It must accept and refuse the same bodies and
# see the same elements and leaf texts.


def _shape_from_etree(element: object) -> object:
    import xml.etree.ElementTree as ET

    assert isinstance(element, ET.Element)
    children = list(element)
    tag = element.tag[1:] if element.tag.startswith("{") else element.tag
    return (tag, None if children else element.text or "", [_shape_from_etree(c) for c in children])


def _shape_from_node(node: object) -> object:
    from aws_iam_backend.login.parse import _Node

    assert isinstance(node, _Node)
    text = None if node.children else "".join(node.text)
    return (node.tag, text, [_shape_from_node(c) for c in node.children])


def _both_parsers(body: bytes) -> tuple[object, object]:
    from defusedxml.ElementTree import fromstring

    from aws_iam_backend.login.parse import _HARDENED_ERRORS, _XML_ERRORS, _parse_hardened

    try:
        reference: object = _shape_from_etree(fromstring(body, forbid_dtd=True))
    except _XML_ERRORS:
        reference = "refused"
    try:
        ours: object = _shape_from_node(_parse_hardened(body))
    except _HARDENED_ERRORS:
        ours = "refused"
    return reference, ours


_XML_BODIES = [
    AWS_GOLDEN,
    MOTO_GOLDEN,
    '<?xml version="1.0" encoding="UTF-8"?>\n' + MOTO_GOLDEN,
    document(result(arn="arn:aws<!-- c -->:iam::123456789012:user/a")),
    document(result(arn="<![CDATA[arn:aws:iam::123456789012:user/a]]>")),
    document(result(arn="arn:aws:iam::123456789012:user/a&amp;b&#65;")),
    document(result(arn="x<?pi data?>y")),
    f'<s:GetCallerIdentityResponse xmlns:s="{NS}"><s:GetCallerIdentityResult/>'
    "</s:GetCallerIdentityResponse>",
    '<a xmlns:x="u"><x:b c="1" x:d="2">t<e/>tail</x:b></a>',
    "<a><x:b/></a>",
    *HOSTILE_BODIES.values(),
]


@pytest.mark.parametrize("body", _XML_BODIES)
def test_hardened_parser_matches_defusedxml(body: str) -> None:
    reference, ours = _both_parsers(body.encode())
    assert ours == reference


def test_hardened_parser_matches_defusedxml_on_other_encodings() -> None:
    for body in (
        '<?xml version="1.0" encoding="UTF-16"?>' + MOTO_GOLDEN,
        '<?xml version="1.0" encoding="ISO-8859-1"?><a>\u00e9</a>',
        '<?xml version="1.0" encoding="cp1252"?><a>\u00e9</a>',
    ):
        encoding = body.split('encoding="')[1].split('"')[0]
        reference, ours = _both_parsers(body.encode(encoding))
        assert ours == reference


_XML_PIECES = st.sampled_from(
    [
        "<a>",
        "</a>",
        "<b/>",
        f'<r xmlns="{NS}">',
        "</r>",
        "<x:c>",
        "</x:c>",
        ' xmlns:x="u"',
        "text",
        " ",
        "&amp;",
        "&lt;",
        "&#10;",
        "&bogus;",
        "<!-- c -->",
        "<?p i?>",
        "<![CDATA[<z>]]>",
        '<!DOCTYPE a [<!ENTITY e "v">]>',
        '<!ENTITY e "v">',
        "&e;",
        '<?xml version="1.0"?>',
        "\u00e9",
        ">",
        "<",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_XML_PIECES, max_size=14).map("".join))
def test_hardened_parser_matches_defusedxml_fuzzed(body: str) -> None:
    reference, ours = _both_parsers(body.encode())
    assert ours == reference
