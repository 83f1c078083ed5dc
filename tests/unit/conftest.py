"""Fixtures the unit tests share. The example catalogues and users are plain values in
examples.py; a fixture that only sets up one module's own data stays in that module."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    """An identity provider's signing key (RSA 2048), one per test module."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_key() -> rsa.RSAPrivateKey:
    """Another provider's key, for tokens the hub must refuse."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)
