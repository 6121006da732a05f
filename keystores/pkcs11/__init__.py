"""The PKCS#11 key store: CA keys generated and used inside an HSM token (SoftHSM2 in tests).

Split by concern: `session` (library loading, one session per token per process, locking,
fork and lost-token handling), `objects` (finding keys and reading public keys in a token),
`keys` (the `cryptography` private-key objects that sign in the token) and `store` (URIs and
the `KeyStore` itself).
"""

from keystores.pkcs11.keys import (
    KeyRef,
    NonExtractableKeyError,
    Pkcs11EcPrivateKey,
    Pkcs11Ed25519PrivateKey,
    Pkcs11RsaPrivateKey,
    TokenSelector,
)
from keystores.pkcs11.objects import key_uri
from keystores.pkcs11.session import finalize_process
from keystores.pkcs11.store import DEFAULT_MODULE, Pkcs11KeyStore, decode_id

__all__ = [
    "DEFAULT_MODULE",
    "KeyRef",
    "NonExtractableKeyError",
    "Pkcs11EcPrivateKey",
    "Pkcs11Ed25519PrivateKey",
    "Pkcs11KeyStore",
    "Pkcs11RsaPrivateKey",
    "TokenSelector",
    "decode_id",
    "finalize_process",
    "key_uri",
]
