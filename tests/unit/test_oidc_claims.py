"""The OIDC login's pure parts (naic.hub.identity.claims): user names, claims, ID token
checks, refusal wording and verified email addresses."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest

from naic.hub.identity import claims as identity
from naic.hub.identity.claims import (
    MappingFile,
    Refusal,
    claim_value,
    groups_from,
    identity_from,
    parse_mapping,
    refusal,
    username_for,
    verify_id_token,
)
from naic.hub.identity.groups_api import parse_groups

ISSUER = "https://idp.example.org"
CLIENT = "naic-hub"
NOW = 1_800_000_000.0


def token(key, **changes) -> str:
    claims = {
        "iss": ISSUER,
        "sub": "abc123",
        "aud": [CLIENT],
        "iat": int(NOW) - 10,
        "exp": int(NOW) + 3600,
        "eduPersonPrincipalName": "ola@uio.no",
    }
    alg = changes.pop("_alg", "RS256")
    for name, value in changes.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return jwt.encode(claims, key, algorithm=alg)


def verify(tok: str, key, **kw):
    args = dict(
        issuer=ISSUER, client_id=CLIENT, algorithms=["RS256"], now=NOW, leeway=60, provider="Feide"
    )
    args.update(kw)
    return verify_id_token(tok, [key.public_key()], **args)


def refused(kind: str, fn, *args, **kwargs) -> Refusal:
    with pytest.raises(Refusal) as info:
        fn(*args, **kwargs)
    assert info.value.kind == kind, str(info.value)
    return info.value


# --- user names -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("identity", "name"),
    [("ola@uio.no", "ola"), ("Kari-N@ntnu.no", "kari-n"), ("per_2@NTNU.no", "per_2")],
)
def test_local_part_is_the_lowercased_part_before_the_at(identity: str, name: str) -> None:
    assert username_for(identity, "local_part", domains=["uio.no", "ntnu.no"]) == name


@pytest.mark.parametrize(
    ("identity", "domain"),
    [
        ("ola@evil.example", "evil.example"),
        ("ola@uio.no.evil.example", "uio.no.evil.example"),
        ("ola@sub.uio.no", "sub.uio.no"),
        ("ola", "no domain"),
        ("ola@", "no domain"),
    ],
)
def test_local_part_of_another_domain_is_no_name(identity: str, domain: str) -> None:
    r = refused("foreign_domain", username_for, identity, "local_part", domains=["uio.no"])
    assert str(r) == (
        f"Your identity {identity} is from {domain}, and this hub takes user names only from "
        f"identities at uio.no, so {identity} has none here. Ask the hub's operators to give "
        "you a user name."
    )


@pytest.mark.parametrize(
    "identity",
    ["ola.nordmann@uio.no", "1st@uio.no", "@uio.no", "x" * 25 + "@uio.no", "øyvind@uio.no"],
)
def test_a_local_part_that_is_no_valid_name_is_refused_with_the_rule(identity: str) -> None:
    r = refused("invalid_name", username_for, identity, "local_part", domains=["uio.no"])
    assert identity in str(r)
    assert "lowercase letters, digits, - and _" in str(r)
    assert "Ask the hub's operators" in str(r)


def test_mapping_maps_identities_case_insensitively() -> None:
    table = {"Ola.Nordmann@UiO.no": "ola", "kari@ntnu.no": "kari2"}
    assert username_for("ola.nordmann@uio.no", "mapping", table) == "ola"
    assert username_for("kari@ntnu.no", "mapping", table) == "kari2"


def test_an_identity_missing_from_the_mapping_is_refused() -> None:
    r = refused("unmapped", username_for, "nils@ntnu.no", "mapping", {"ola@uio.no": "ola"})
    assert str(r) == (
        "Your identity nils@ntnu.no has no user name on this hub yet. Ask the hub's operators "
        "to add it to the hub's list of user names."
    )


def test_a_mapped_name_that_is_invalid_is_refused() -> None:
    refused("invalid_name", username_for, "ola@uio.no", "mapping", {"ola@uio.no": "Ola Nordmann"})


def test_mapping_file_is_parsed_and_checked() -> None:
    assert parse_mapping("ola@uio.no: ola\nkari@ntnu.no: kari\n", "f") == {
        "ola@uio.no": "ola",
        "kari@ntnu.no": "kari",
    }
    assert parse_mapping("", "f") == {}
    with pytest.raises(ValueError, match=r"f: ola@uio.no: 'Ola' is not a valid user name"):
        parse_mapping("ola@uio.no: Ola\n", "f")
    with pytest.raises(ValueError, match="must be a mapping"):
        parse_mapping("- ola\n", "f")
    with pytest.raises(ValueError, match="not valid YAML"):
        parse_mapping("a: [\n", "f")


def test_mapping_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "names.yaml"
    path.write_text("ola@uio.no: ola\n")
    mapping = MappingFile(str(path))
    assert mapping.table() == {"ola@uio.no": "ola"}
    path.write_text("ola@uio.no: ola\nkari@ntnu.no: kari\n")
    assert mapping.table() == {"ola@uio.no": "ola", "kari@ntnu.no": "kari"}


# --- claims -------------------------------------------------------------------------------


def test_claims_by_exact_name_or_dotted_path() -> None:
    claims = {"https://x.org/claims.groups": ["a"], "realm_access": {"roles": ["r"]}}
    assert claim_value(claims, "https://x.org/claims.groups") == ["a"]
    assert claim_value(claims, "realm_access.roles") == ["r"]
    assert claim_value(claims, "realm_access.nothing") is None


def test_identity_comes_from_the_id_token_before_userinfo() -> None:
    claim = "eduPersonPrincipalName"
    assert identity_from({claim: "ola@uio.no"}, {claim: "evil@x"}, claim) == "ola@uio.no"
    assert identity_from({}, {claim: "ola@uio.no"}, claim) == "ola@uio.no"
    assert identity_from({claim: ["ola@uio.no"]}, {}, claim) == "ola@uio.no"
    assert identity_from({claim: ""}, {}, claim) is None
    assert identity_from({claim: ["a", "b"]}, {}, claim) is None
    assert identity_from({}, {}, claim) is None


def test_groups_are_text_values_from_the_id_token_else_userinfo() -> None:
    assert groups_from({"groups": ["b", "a", 3, "a"]}, {}, "groups") == ["a", "b"]
    assert groups_from({"groups": "solo"}, {}, "groups") == ["solo"]
    assert groups_from({}, {"groups": ["u"]}, "groups") == ["u"]
    assert groups_from({"groups": ["t"]}, {"groups": ["u"]}, "groups") == ["t"]
    assert groups_from({"groups": ["t"]}, {}, None) == []


# --- ID token verification ------------------------------------------------------------


def test_a_correct_id_token_gives_its_claims(key) -> None:
    claims = verify(token(key), key)
    assert claims["sub"] == "abc123"
    assert claims["eduPersonPrincipalName"] == "ola@uio.no"


def test_a_token_signed_by_another_key_is_refused(key, other_key) -> None:
    r = refused("signature", verify, token(other_key), key)
    assert "does not match Feide's published keys" in str(r)


def test_a_token_whose_claims_were_changed_is_refused(key) -> None:
    head, _, sig = token(key).split(".")
    forged = jwt.encode({"eduPersonPrincipalName": "boss@uio.no"}, "k" * 32, algorithm="HS256")
    refused("signature", verify, f"{head}.{forged.split('.')[1]}.{sig}", key)


def test_any_of_several_keys_may_have_signed_it(key, other_key) -> None:
    tok = token(key)
    claims = verify_id_token(
        tok,
        [other_key.public_key(), key.public_key()],
        issuer=ISSUER,
        client_id=CLIENT,
        algorithms=["RS256"],
        now=NOW,
    )
    assert claims["sub"] == "abc123"


def test_a_foreign_issuer_is_refused_and_named(key) -> None:
    r = refused("issuer", verify, token(key, iss="https://evil.example"), key)
    assert str(r).startswith(
        f"The identity token was issued by https://evil.example, not by {ISSUER}, the provider "
        "this hub trusts"
    )


def test_another_audience_is_refused(key) -> None:
    r = refused("audience", verify, token(key, aud=["another-service"]), key)
    assert "issued for another service, not for this hub" in str(r)


def test_several_audiences_need_us_as_authorized_party(key) -> None:
    refused("audience", verify, token(key, aud=[CLIENT, "other"]), key)
    assert verify(token(key, aud=[CLIENT, "other"], azp=CLIENT), key)["azp"] == CLIENT
    refused("audience", verify, token(key, azp="other"), key)


def test_an_expired_token_is_refused_after_the_leeway(key) -> None:
    refused("expired", verify, token(key, exp=int(NOW) - 61), key)
    assert verify(token(key, exp=int(NOW) - 59), key)  # within the leeway
    r = refused("expired", verify, token(key), key, now=NOW + 7200)  # the hub's clock moved
    assert "has expired" in str(r) and "clocks" in str(r)


def test_a_token_from_the_future_is_refused(key) -> None:
    refused("not_yet_valid", verify, token(key, iat=int(NOW) + 600), key)
    refused("not_yet_valid", verify, token(key, nbf=int(NOW) + 600), key)


@pytest.mark.parametrize("claim", ["iss", "aud", "exp", "iat", "sub"])
def test_a_token_without_a_required_claim_is_refused(key, claim: str) -> None:
    r = refused("missing_claim", verify, token(key, **{claim: None}), key)
    assert repr(claim) in str(r)


def test_unsigned_and_symmetric_tokens_are_refused(key) -> None:
    unsigned = jwt.encode({"iss": ISSUER}, None, algorithm="none")
    refused("algorithm", verify, unsigned, key)
    hs = token("the-client-secret-" * 2, _alg="HS256")
    r = refused("algorithm", verify, hs, key, algorithms=["RS256", "HS256"])
    assert "'HS256'" in str(r)


def test_garbage_is_refused_as_unreadable(key) -> None:
    refused("malformed", verify, "not.a.token", key)
    refused("malformed", verify, "", key)


# --- refusal wording -------------------------------------------------------------------


def test_every_refusal_says_what_happened_and_what_to_do() -> None:
    facts = dict(
        provider="Feide",
        got="x",
        expected="y",
        alg="'none'",
        claim="sub",
        identity="ola@uio.no",
        name="ola",
        error="server_error",
        domain="evil.example",
        domains="uio.no",
    )
    for kind in identity._WORDS:
        r = refusal(kind, **facts)
        text = str(r)
        assert text.endswith("."), kind
        assert "{" not in text, kind
        assert any(
            hint in text
            for hint in (
                "Start again",
                "Ask the hub",
                "Ask your site",
                "Try again",
                "ell the hub",
                "Verify the address",
            )
        ), (kind, text)
        assert 400 <= r.status < 600


def test_state_refusal_wording() -> None:
    assert str(refusal("state")) == (
        "The login could not be finished because its security check (the OAuth state) did not "
        "match: this happens when a login link is reused, opened in another browser, or "
        "altered. Start again from the login page."
    )
    assert refusal("state").status == 400


def test_collision_refusal_does_not_name_the_other_identity() -> None:
    text = str(refusal("collision", name="ola", identity="ola@ntnu.no"))
    assert text == (
        "The user name 'ola' already belongs to another identity, so ola@ntnu.no cannot use "
        "it. Ask the hub's operators to give you a different user name."
    )


# --- who is who across institutions ---------------------------------------------------


@pytest.mark.parametrize(
    ("id_claims", "userinfo", "verified"),
    [
        ({"email_verified": True}, {}, True),
        ({"email_verified": "true"}, {}, True),
        ({"email_verified": False}, {"email_verified": True}, False),  # the ID token wins
        ({}, {"email_verified": True}, True),
        ({}, {}, False),  # not said is not verified
        ({"email_verified": "yes"}, {}, False),
    ],
)
def test_email_is_verified_only_when_the_provider_says_so(id_claims, userinfo, verified) -> None:
    assert identity.email_verified(id_claims, userinfo) is verified


# --- Feide: a namespaced identity claim, groups from the groups API ---------------------------

EPPN = "https://n.feide.no/claims/eduPersonPrincipalName"


def test_a_namespaced_claim_name_names_the_person() -> None:
    # A URL with dots: the exact name, never a dotted path into `https://n` objects.
    assert identity_from({EPPN: "ola@uio.no", "sub": "x"}, {}, EPPN) == "ola@uio.no"
    assert identity_from({"sub": "x"}, {EPPN: "ola@uio.no"}, EPPN) == "ola@uio.no"
    assert identity_from({"eduPersonPrincipalName": "ola@uio.no"}, {}, EPPN) is None


FEIDE_ANSWER = """[
  {"id": "fc:org:uio.no", "displayName": "Universitetet i Oslo", "type": "fc:org",
   "membership": {"basic": "member", "affiliation": ["employee", "member"],
                  "primaryAffiliation": "employee"},
   "parent": "fc:org:uio.no", "public": true},
  {"id": "fc:adhoc:2c9e3b0e-5f6a-4e49-9e3c-0c3f8b1d2a77", "displayName": "Weather ML lab",
   "type": "fc:adhoc", "membership": {"basic": "admin"}, "public": false},
  {"id": "fc:fs:fs:prg:uio.no:MAT-INF", "displayName": "Matematikk og informatikk",
   "type": "fc:fs:prg", "membership": {"basic": "member", "active": true}}
]"""


def test_feide_groups_are_the_ids_of_its_answer() -> None:
    assert parse_groups(FEIDE_ANSWER) == [
        "fc:adhoc:2c9e3b0e-5f6a-4e49-9e3c-0c3f8b1d2a77",
        "fc:fs:fs:prg:uio.no:MAT-INF",
        "fc:org:uio.no",
    ]
    assert parse_groups(FEIDE_ANSWER.encode()) == parse_groups(FEIDE_ANSWER)
    assert parse_groups(b"[]") == []


def test_group_entries_without_a_text_id_are_ignored() -> None:
    body = '[{"id": "b"}, {"id": " a "}, {"id": "a"}, {"id": 7}, {"id": ""}, {"name": "c"}, "d"]'
    assert parse_groups(body) == ["a", "b"]


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"<html>maintenance</html>", "something that is not JSON"),
        (b"", "something that is not JSON"),
        (b"\xff\xfe", "something that is not JSON"),
        (b'{"id": "fc:org:uio.no"}', "JSON that is not a list of groups"),
        (b'"fc:org:uio.no"', "JSON that is not a list of groups"),
    ],
)
def test_an_answer_that_is_no_list_of_groups_says_what_it_is(body: bytes, why: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_groups(body)
    assert str(info.value) == why


def test_groups_unreachable_refusal_wording() -> None:
    r = refusal("groups_unreachable", provider="Feide")
    assert r.status == 503
    assert str(r) == (
        "The hub could not fetch your groups from Feide, and without them you have no project "
        "here, so you are not logged in. Try again in a few minutes; if it happens again, tell "
        "the hub's operators."
    )
