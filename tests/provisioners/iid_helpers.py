"""What the instance-identity provisioner tests (AWS, GCP, Azure) share."""

from __future__ import annotations

from typing import Any

import pytest

from pki.errors import CAError, ErrorKind
from provisioners.audience import Method, audiences
from provisioners.base import Provisioner
from provisioners.claims import Claims
from provisioners.registry import ProvisionerRegistry, parse_token
from provisioners.schema import parse_provisioner
from tests.cloud_metadata import CA_DNS

SIGN = audiences([CA_DNS, "127.0.0.1"], Method.SIGN)


def registry(*configs: dict[str, Any]) -> ProvisionerRegistry:
    """A registry of ca.json entries, checked by the schema as the CA checks them."""
    return ProvisionerRegistry([parse_provisioner(c) for c in configs], Claims())


def authorize(prov: Provisioner, token: str) -> Any:
    """A sign authorisation, as the authority asks for it."""
    return prov.authorize(parse_token(token), Method.SIGN, SIGN)


def refused(prov: Provisioner, token: str) -> CAError:
    """The token must be refused with step-ca's 401; the error, for its reason."""
    with pytest.raises(CAError) as err:
        authorize(prov, token)
    assert err.value.kind is ErrorKind.UNAUTHORIZED
    return err.value
