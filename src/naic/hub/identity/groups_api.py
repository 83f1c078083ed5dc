"""A person's groups from a groups API, as Feide gives them: not in a claim of the ID token,
but from `https://groups-api.dataporten.no/groups/me/groups`, called with the person's OAuth
access token as `Authorization: Bearer …` (Feide's scopes `groups-org`, `groups-other` and
`groups-edu` for the kinds of groups). It answers a JSON list of group objects, e.g.
`[{"id": "fc:org:uio.no", "displayName": "Universitetet i Oslo", "type": "fc:org", …}]`;
each `id` is a group, matched against projects' `groups`.

`parse_groups` is pure. `fetch_groups` makes the one request; every way it can fail (no
answer in time, no connection, a status other than 200, an answer that is not such a list)
is a `GroupsApiFailed` whose `str()` says what happened, for the hub's log line.
"""

from __future__ import annotations

import json

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

#: Seconds to wait for the groups API before the login goes on without its groups.
GROUPS_API_TIMEOUT_S = 5.0


class GroupsApiFailed(Exception):
    """The groups API gave no groups; `str()` says why (e.g. `answered HTTP 503`)."""


def parse_groups(body: bytes | str) -> list[str]:
    """Pure: the group ids in a groups API's answer, sorted and without repeats.

    The answer must be a JSON list; an entry that is not an object with a text `id` is
    ignored (as a groups claim's values that are not text are). ValueError says what the
    answer was instead.
    """
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ValueError("something that is not JSON") from None
    if not isinstance(data, list):
        raise ValueError("JSON that is not a list of groups")
    ids = {g["id"].strip() for g in data if isinstance(g, dict) and isinstance(g.get("id"), str)}
    return sorted(i for i in ids if i)


async def fetch_groups(
    url: str,
    access_token: str,
    *,
    timeout_s: float = GROUPS_API_TIMEOUT_S,
    client: AsyncHTTPClient | None = None,
) -> list[str]:
    """The person's group ids from the API at `url`, or GroupsApiFailed."""
    request = HTTPRequest(
        url,
        headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
        connect_timeout=timeout_s,
        request_timeout=timeout_s,
        follow_redirects=False,  # the token goes to `url` only
    )
    try:
        resp = await (client or AsyncHTTPClient()).fetch(request, raise_error=False)
    except HTTPClientError as exc:  # no response: 599 (time-out, connection closed)
        if "timeout" in str(exc).lower():
            raise GroupsApiFailed(f"did not answer within {timeout_s:g} s") from None
        raise GroupsApiFailed(f"could not be reached ({exc.message or exc})") from None
    except OSError as exc:  # connection refused, unknown host, TLS
        raise GroupsApiFailed(f"could not be reached ({exc.strerror or exc})") from None
    if resp.code != 200:
        raise GroupsApiFailed(f"answered HTTP {resp.code}")
    try:
        return parse_groups(resp.body or b"")
    except ValueError as exc:
        raise GroupsApiFailed(f"answered {exc}") from None
