"""What an OpenID Connect login proves, and the sentences for what it does not: pure.

Claims to identity, groups and hub user name (`local_part` or the operator's mapping file),
ID-token verification given the provider's keys, and every refusal a person can read.
`naic.hub.identity.oidc` (the authenticator) uses these; they need no hub, network or clock of
their own, so the unit tests check them exactly.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jwt
import yaml

from naic.hub.identity.auth import USERNAME_PATTERN

#: Asymmetric algorithms only: `none` proves nothing, and HS* would make the client secret
#: (which the hub holds) a signing key.
SIGNING_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
_NAME_RULE = "lowercase letters, digits, - and _, starting with a letter, at most 24 characters"
_AGAIN = "Start again from the login page"
_TELL = "if it happens again, tell the hub's operators"


# --- refusals: what a person reads ----------------------------------------------------------


class Refusal(Exception):
    """A login the hub will not complete; `str()` is the sentence the person reads."""

    def __init__(self, message: str, *, status: int = 403, kind: str = "refused"):
        super().__init__(message)
        self.status = status
        self.kind = kind


class NeedsAccess(Exception):
    """The provider vouched for this person, but they have no project here (yet)."""

    def __init__(self, identity: str, username: str):
        super().__init__(f"{identity} ({username}) has no project on this hub")
        self.identity = identity
        self.username = username


_WORDS: dict[str, tuple[int, str]] = {
    "state": (
        400,
        "The login could not be finished because its security check (the OAuth state) did "
        "not match: this happens when a login link is reused, opened in another browser, or "
        f"altered. {_AGAIN}.",
    ),
    "no_code": (
        400,
        f"{{provider}} sent you back to the hub without a login code. {_AGAIN}.",
    ),
    "cancelled": (
        403,
        f"The login was cancelled at {{provider}}, so you are not logged in. {_AGAIN} "
        "when you want to log in.",
    ),
    "provider_error": (
        502,
        f"{{provider}} refused the login ({{error}}). {_AGAIN}; {_TELL}.",
    ),
    "code_refused": (
        403,
        f"{{provider}} did not accept this login's code (it may have been used already, or "
        f"have expired). {_AGAIN}.",
    ),
    "unreachable": (
        502,
        "The hub could not reach {provider} to finish the login. Try again in a minute; "
        f"{_TELL}.",
    ),
    "no_id_token": (
        502,
        "{provider} did not send an identity token, so the hub cannot tell who you are. "
        f"{_AGAIN}; {_TELL}.",
    ),
    "malformed": (
        403,
        "The identity token from {provider} could not be read, so the hub cannot trust it. "
        f"{_AGAIN}; {_TELL}.",
    ),
    "algorithm": (
        403,
        "The identity token is signed with {alg}, which this hub does not accept as proof of "
        f"who you are. {_AGAIN}; {_TELL}.",
    ),
    "signature": (
        403,
        "The identity token's signature does not match {provider}'s published keys, so the "
        f"hub cannot trust who it names. {_AGAIN}; {_TELL}.",
    ),
    "keys_unreachable": (
        502,
        "The hub could not fetch {provider}'s signing keys to check your identity token. "
        f"Try again in a minute; {_TELL}.",
    ),
    "issuer": (
        403,
        "The identity token was issued by {got}, not by {expected}, the provider this hub "
        f"trusts, so you are not logged in. {_AGAIN}; {_TELL}.",
    ),
    "audience": (
        403,
        "The identity token was issued for another service, not for this hub, so you are not "
        f"logged in. {_AGAIN}; {_TELL}.",
    ),
    "expired": (
        403,
        f"The identity token from {{provider}} has expired, so you are not logged in. {_AGAIN}; "
        "if this keeps happening, the clocks of the hub and the provider may disagree: tell "
        "the hub's operators.",
    ),
    "not_yet_valid": (
        403,
        "The identity token from {provider} is dated in the future, so you are not logged in; "
        "the clocks of the hub and the provider disagree. Try again in a minute; "
        f"{_TELL}.",
    ),
    "missing_claim": (
        403,
        "The identity token from {provider} lacks the {claim!r} claim, so the hub cannot "
        f"trust it. {_AGAIN}; {_TELL}.",
    ),
    "userinfo_mismatch": (
        403,
        "{provider}'s user information is about someone else than its identity token, so "
        f"you are not logged in. {_AGAIN}; {_TELL}.",
    ),
    "no_identity": (
        403,
        "{provider} did not tell the hub who you are (the {claim!r} claim is missing), so "
        "you are not logged in. Tell the hub's operators: the hub may need to ask for more "
        "scopes, or the provider to release that claim.",
    ),
    "invalid_name": (
        403,
        "Your identity {identity} gives the user name {name!r}, which this hub cannot use "
        f"(names are {_NAME_RULE}). Ask the hub's operators to give you a user name.",
    ),
    "unmapped": (
        403,
        "Your identity {identity} has no user name on this hub yet. Ask the hub's operators "
        "to add it to the hub's list of user names.",
    ),
    "foreign_domain": (
        403,
        "Your identity {identity} is from {domain}, and this hub takes user names only from "
        "identities at {domains}, so {identity} has none here. Ask the hub's operators to give "
        "you a user name.",
    ),
    "not_in_register": (
        403,
        "Your identity {identity} is not in this site's user register, so it has no user name "
        "here. Ask your site's user administration to register it, then log in again.",
    ),
    "register_ambiguous": (
        403,
        "Your identity {identity} has several entries in this site's user register, so the hub "
        "cannot tell which account is yours. Tell the hub's operators.",
    ),
    "register_unreachable": (
        503,
        "The hub could not reach this site's user register to find your user name, so nobody "
        f"can log in right now. Try again in a few minutes; {_TELL}.",
    ),
    "unverified_email": (
        403,
        "{provider} has not verified that the e-mail address {identity} is yours, so the hub "
        "cannot log you in with it. Verify the address at {provider}, then log in again.",
    ),
    "groups_unreachable": (
        503,
        "The hub could not fetch your groups from {provider}, and without them you have no "
        f"project here, so you are not logged in. Try again in a few minutes; {_TELL}.",
    ),
    "mapping_broken": (
        503,
        "The hub's list of user names cannot be read right now, so nobody can log in. Try "
        "again later; tell the hub's operators.",
    ),
    "collision": (
        403,
        "The user name {name!r} already belongs to another identity, so {identity} cannot use "
        "it. Ask the hub's operators to give you a different user name.",
    ),
    "bound_elsewhere": (
        403,
        "Your identity {identity} cannot log in as {name!r}: that name, or your identity, is "
        "already bound to another account on this hub. Ask the hub's operators to sort out "
        "your user name.",
    ),
    "blocked": (
        403,
        "The account {name!r} is blocked on this hub. Ask the hub's operators if you think "
        "this is a mistake.",
    ),
    "internal": (
        500,
        f"The login could not be finished because of an error on the hub. {_AGAIN}; {_TELL}.",
    ),
}


def refusal(kind: str, **facts: Any) -> Refusal:
    """Pure: the refusal of this kind, its sentence filled with `facts`."""
    status, words = _WORDS[kind]
    facts.setdefault("provider", "your institution's login")
    return Refusal(words.format(**facts), status=status, kind=kind)


# --- claims and user names (pure) -----------------------------------------------------------


def claim_value(claims: Mapping[str, Any], name: str) -> Any:
    """A claim by name; a dotted name (`realm_access.roles`) also reaches into objects.
    An exact key wins, since claim names may be URLs with dots."""
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def identity_from(
    id_claims: Mapping[str, Any], userinfo: Mapping[str, Any], claim: str
) -> str | None:
    """The person's identity: the claim from the verified ID token, else from userinfo."""
    for source in (id_claims, userinfo):
        value = claim_value(source, claim)
        if isinstance(value, list) and len(value) == 1:  # some IdPs send single values as lists
            value = value[0]
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def groups_from(
    id_claims: Mapping[str, Any], userinfo: Mapping[str, Any], claim: str | None
) -> list[str]:
    """The person's IdP groups (text values only), from the ID token, else userinfo."""
    if not claim:
        return []
    for source in (id_claims, userinfo):
        value = claim_value(source, claim)
        if value is None:
            continue
        values = [value] if isinstance(value, str) else value
        if isinstance(values, list):
            return sorted({v.strip() for v in values if isinstance(v, str) and v.strip()})
    return []


def username_for(
    identity: str,
    rule: str,
    mapping: Mapping[str, str] | None = None,
    domains: Sequence[str] = (),
) -> str:
    """Pure: the hub user name for an identity, or a Refusal.

    `local_part`: the part before `@`, lower-cased (`Ola@uio.no` → `ola`), only for an
    identity at one of `domains` (one user register; anything else would be first come).
    `mapping`: the operator's `identity: name` table (identities compared case-insensitively).
    (`ldap` names come from `naic.hub.identity.register`, which checks them with `checked_name`.)
    """
    if rule == "local_part":
        local, at, domain = identity.strip().rpartition("@")
        domain = domain if at else ""
        if domain.casefold() not in {d.casefold() for d in domains}:
            raise refusal(
                "foreign_domain",
                identity=identity,
                domain=domain or "no domain",
                domains=", ".join(domains) or "no domain",
            )
        name = local.lower()
    elif rule == "mapping":
        table = {k.casefold(): v for k, v in (mapping or {}).items()}
        found = table.get(identity.casefold())
        if found is None:
            raise refusal("unmapped", identity=identity)
        name = found
    else:
        raise ValueError(f"unknown user name rule {rule!r}")
    return checked_name(identity, name)


def checked_name(identity: str, name: str) -> str:
    """Pure: `name` if the hub can use it as a user name, else the refusal that says why."""
    if not re.match(USERNAME_PATTERN, name):
        raise refusal("invalid_name", identity=identity, name=name)
    return name


def email_verified(id_claims: Mapping[str, Any], userinfo: Mapping[str, Any]) -> bool:
    """Pure: whether the provider says the e-mail address is verified (ID token, else
    userinfo). Some providers send the boolean as text."""
    for source in (id_claims, userinfo):
        if "email_verified" in source:
            return source["email_verified"] in (True, "true")
    return False


def parse_mapping(text: str, file: str) -> dict[str, str]:
    """The operator's mapping file: YAML `identity: username`; ValueError names the problem."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"{file}: is not valid YAML: {exc}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValueError(f"{file}: must be a mapping of identity: user name")
    out = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValueError(f"{file}: {key!r}: identities and user names must be text")
        if not re.match(USERNAME_PATTERN, value):
            raise ValueError(f"{file}: {key}: {value!r} is not a valid user name ({_NAME_RULE})")
        out[key] = value
    return out


class MappingFile:
    """The mapping file, read again whenever it changes on disk."""

    def __init__(self, path: str):
        self.path = path
        self._stamp: tuple | None = None
        self._table: dict[str, str] = {}

    def table(self) -> dict[str, str]:
        st = os.stat(self.path)  # OSError: the caller refuses and logs
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        if stamp != self._stamp:
            self._table = parse_mapping(Path(self.path).read_text(encoding="utf-8"), self.path)
            self._stamp = stamp
        return self._table


# --- ID token verification (pure, given the keys) --------------------------------------------


def verify_id_token(
    token: str,
    keys: Sequence[Any],
    *,
    issuer: str,
    client_id: str,
    algorithms: Sequence[str],
    now: float,
    leeway: float = 60,
    provider: str = "your institution's login",
) -> dict[str, Any]:
    """The verified claims of an ID token (OIDC Core 3.1.3.7), or a Refusal.

    `keys`: the provider's candidate public keys (PyJWK objects or key objects); the token
    must verify with one of them. `now`: seconds since the epoch, injectable for tests.
    """
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise refusal("malformed", provider=provider) from None
    alg = header.get("alg")
    if alg not in algorithms or alg not in SIGNING_ALGORITHMS:
        raise refusal("algorithm", alg=repr(alg), provider=provider)
    options = {
        "verify_exp": False,  # checked below against the injectable clock
        "verify_iat": False,
        "verify_nbf": False,
        "require": ["iss", "sub", "aud", "exp", "iat"],
    }
    claims = None
    for key in keys:
        try:
            claims = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=client_id,
                issuer=issuer,
                options=options,
            )
            break
        except jwt.InvalidSignatureError:
            continue
        except jwt.InvalidIssuerError:
            got = jwt.decode(token, options={"verify_signature": False}).get("iss")
            raise refusal("issuer", got=_show(got), expected=issuer, provider=provider) from None
        except jwt.InvalidAudienceError:
            raise refusal("audience", provider=provider) from None
        except jwt.MissingRequiredClaimError as exc:
            raise refusal("missing_claim", claim=exc.claim, provider=provider) from None
        except (jwt.PyJWTError, ValueError, TypeError):
            raise refusal("malformed", provider=provider) from None
    if claims is None:
        raise refusal("signature", provider=provider)
    several = isinstance(claims["aud"], list) and len(claims["aud"]) > 1
    if (several or "azp" in claims) and claims.get("azp") != client_id:
        raise refusal("audience", provider=provider)
    try:
        exp, iat = float(claims["exp"]), float(claims["iat"])
        nbf = float(claims.get("nbf", iat))
    except (TypeError, ValueError):
        raise refusal("malformed", provider=provider) from None
    if now > exp + leeway:
        raise refusal("expired", provider=provider)
    if iat > now + leeway or nbf > now + leeway:
        raise refusal("not_yet_valid", provider=provider)
    if not isinstance(claims["sub"], str) or not claims["sub"]:
        raise refusal("missing_claim", claim="sub", provider=provider)
    return claims


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
