"""Settings fail closed: production by default, the dev secret refused there, secrets never echoed."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from export_engine.settings import Settings

URLS = {
    "database_url": "postgresql://exports:db-password-1@db.internal:5432/exports",
    "source_database_url": "postgresql://reader:db-password-2@db.internal:5432/transactions",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in list(os.environ):
        if name.startswith(("JWT_", "AWS_")) or name in (
            "ENVIRONMENT",
            "DATABASE_URL",
            "SOURCE_DATABASE_URL",
        ):
            monkeypatch.delenv(name)


def test_environment_defaults_to_production_and_refuses_the_dev_secret():
    settings = Settings(**URLS)
    assert settings.environment == "production"
    assert settings.using_dev_secret
    with pytest.raises(RuntimeError, match="JWT_SECRET must be set when ENVIRONMENT='production'"):
        settings.check_secrets()


@pytest.mark.parametrize("environment", ["production", "staging", "Development", "dev"])
def test_only_development_accepts_the_dev_secret(environment):
    with pytest.raises(RuntimeError, match="JWT_SECRET must be set"):
        Settings(**URLS, environment=environment).check_secrets()


def test_development_or_a_real_secret_starts():
    Settings(**URLS, environment="development").check_secrets()
    Settings(**URLS, jwt_secret="r" * 40).check_secrets()


def test_the_environment_variable_is_read(monkeypatch):
    monkeypatch.setenv("ENVIRONMENT", "development")
    monkeypatch.setenv("JWT_SECRET", "e" * 32)
    settings = Settings(**URLS)
    assert settings.environment == "development"
    assert settings.jwt_secret.get_secret_value() == "e" * 32


def test_secrets_are_not_in_repr_or_str():
    settings = Settings(**URLS, jwt_secret="jwt-secret-" * 4, aws_secret_access_key="aws-secret-key-42")
    for text in (repr(settings), str(settings)):
        for secret in ("jwt-secret-", "aws-secret-key-42", "db-password-1", "db-password-2"):
            assert secret not in text, text


def test_a_rejected_secret_is_not_echoed_in_the_error():
    with pytest.raises(ValidationError) as info:
        Settings(**URLS, jwt_secret="too-short-secret")
    assert "too-short-secret" not in str(info.value)
    assert "jwt_secret" in str(info.value) and "at least 32" in str(info.value)


@pytest.mark.parametrize("algorithm", ["none", "RS512", "hs256", "PS256"])
def test_the_algorithm_is_a_closed_choice(algorithm):
    with pytest.raises(ValidationError, match="jwt_algorithm"):
        Settings(**URLS, jwt_algorithm=algorithm)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"jwt_algorithm": "RS256"},
            "JWT_ALGORITHM=RS256 needs exactly one of JWT_PUBLIC_KEY or JWT_JWKS_URL",
        ),
        (
            {"jwt_algorithm": "ES256", "jwt_public_key": "pem", "jwt_jwks_url": "https://idp/jwks"},
            "needs exactly one of",
        ),
        ({"jwt_jwks_url": "https://idp/jwks"}, "JWT_ALGORITHM=HS256 verifies with JWT_SECRET"),
    ],
)
def test_keys_must_match_the_algorithm(values, message):
    with pytest.raises(ValidationError, match=message):
        Settings(**URLS, **values)


def test_asymmetric_algorithms_never_use_the_dev_secret():
    settings = Settings(**URLS, jwt_algorithm="RS256", jwt_jwks_url="https://idp.example/jwks.json")
    assert not settings.using_dev_secret
    settings.check_secrets()
