import time

import jwt
import pytest

from api.security import AuthError, decode_token, issue_token

SECRET = "s" * 40


def test_valid_token_gives_the_subject():
    assert (
        decode_token(issue_token("alice", secret=SECRET), secret=SECRET, algorithm="HS256").subject == "alice"
    )


def _none_alg_token() -> str:
    return jwt.encode({"sub": "alice", "exp": int(time.time()) + 60}, key=None, algorithm="none")


@pytest.mark.parametrize(
    ("token", "message"),
    [
        (lambda: issue_token("alice", secret=SECRET, ttl_seconds=-10), "token has expired"),
        (lambda: issue_token("alice", secret="another-secret-" * 3), "token signature is invalid"),
        (_none_alg_token, "token algorithm 'none' is not accepted; use HS256"),
        (lambda: "not.a.jwt", "bearer token is malformed"),
        (lambda: jwt.encode({"sub": "alice"}, SECRET, algorithm="HS256"), "token is missing the 'exp' claim"),
        (
            lambda: jwt.encode({"exp": int(time.time()) + 60}, SECRET, algorithm="HS256"),
            "token is missing the 'sub' claim",
        ),
        (
            lambda: jwt.encode({"sub": " ", "exp": int(time.time()) + 60}, SECRET, algorithm="HS256"),
            "non-empty",
        ),
    ],
)
def test_bad_tokens_are_refused_with_a_reason(token, message):
    with pytest.raises(AuthError, match=message):
        decode_token(token(), secret=SECRET, algorithm="HS256")


def test_a_token_living_longer_than_the_limit_is_refused_and_one_within_it_accepted():
    from api.security import TokenPolicy, TokenVerifier

    verifier = TokenVerifier(TokenPolicy("HS256", key=SECRET, max_lifetime_seconds=3600))
    assert verifier.decode(issue_token("alice", secret=SECRET, ttl_seconds=3500)).subject == "alice"
    year_3000 = jwt.encode({"sub": "alice", "exp": 32503680000}, SECRET, algorithm="HS256")
    with pytest.raises(AuthError, match=r"token lives too long: it expires more than 3600 seconds from now"):
        verifier.decode(year_3000)
