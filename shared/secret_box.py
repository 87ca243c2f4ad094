"""Secrets a service must read back (a shop's webhook secret, a partner's signing secret), kept
encrypted with Fernet under VUONMINH_SECRETS_KEY. Several comma-separated keys rotate the key itself."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class SecretsKeyMissing(Exception):
    """VUONMINH_SECRETS_KEY is unset or wrong: secrets can be neither stored nor read."""


class SecretBox:
    """Fernet encryption of stored secrets. Several comma-separated keys rotate the key itself:
    the first encrypts, each one decrypts."""

    def __init__(self, keys: str | None) -> None:
        self._fernet: MultiFernet | None = None
        if keys:
            try:
                self._fernet = MultiFernet([Fernet(key.strip()) for key in keys.split(",") if key.strip()])
            except ValueError as error:
                raise SecretsKeyMissing(
                    "VUONMINH_SECRETS_KEY is not a Fernet key (32 url-safe base64-encoded bytes), e.g. the output of "
                    'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
                ) from error

    @property
    def usable(self) -> bool:
        return self._fernet is not None

    def encrypt(self, secret: str) -> str:
        if self._fernet is None:
            raise SecretsKeyMissing("VUONMINH_SECRETS_KEY is not set: secrets cannot be stored")
        return self._fernet.encrypt(secret.encode()).decode()

    def decrypt(self, token: str) -> str:
        if self._fernet is None:
            raise SecretsKeyMissing("VUONMINH_SECRETS_KEY is not set: secrets cannot be read")
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as error:
            raise SecretsKeyMissing("a stored secret does not decrypt with VUONMINH_SECRETS_KEY") from error
