"""Certificate issuance policies: step-ca's name rules (cases from its policy package's tests
and documentation), the wording of refusals, and the constraints it refuses to load."""

from __future__ import annotations

import pytest

from pki.errors import ErrorKind
from pki.policy import (
    IssuancePolicy,
    NamePolicy,
    Names,
    PolicyConfigError,
    PolicyError,
    ssh_policy,
    x509_policy,
)
from pki.sans import SubjectAltNames

FORBIDDEN = "The request was forbidden by the certificate authority: "


def allows(policy: NamePolicy | None, *sans: str, cn: str = "") -> bool:
    assert policy is not None
    try:
        policy.check_x509(cn, SubjectAltNames.split(sans))
    except PolicyError:
        return False
    return True


def refusal(policy: NamePolicy | None, *sans: str, cn: str = "") -> PolicyError:
    assert policy is not None
    with pytest.raises(PolicyError) as caught:
        policy.check_x509(cn, SubjectAltNames.split(sans))
    return caught.value


# --- DNS names ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "allowed"),
    [
        ("www.example.com", True),
        ("WWW.Example.COM", True),  # case never matters
        ("example.com", False),  # `*.` needs exactly one more label
        ("a.b.example.com", False),
        ("host.local", False),
        ("example.com.evil", False),
        ("*.example.com", False),  # a literal wildcard needs allowWildcardNames
        ("", False),
        (".www.example.com", False),
        ("*Xexample.com", False),
        ("e*ample.example.com", False),
        ("www..example.com", False),
    ],
)
def test_dns_wildcard_constraint_is_one_label(name: str, allowed: bool) -> None:
    assert allows(x509_policy(Names(dns=["*.example.com"]), Names()), name) is allowed


def test_dns_exact_constraint_and_literal_wildcards() -> None:
    exact = x509_policy(Names(dns=["www.example.com"]), Names())
    assert allows(exact, "www.example.com")
    assert not allows(exact, "host.example.com")
    wild = x509_policy(Names(dns=["*.example.com"]), Names(), wildcards=True)
    assert allows(wild, "*.example.com")
    assert not allows(wild, "*.*.example.com")


def test_dns_internationalized_names_match_as_punycode() -> None:
    policy = x509_policy(Names(dns=["*.例.jp"]), Names())
    assert allows(policy, "xn--jp-cd2fp15c.xn--fsq.jp")
    assert allows(policy, "JP納豆.例.jp")
    assert not allows(policy, "xn--jp-cd2fp15c.jp")


@pytest.mark.parametrize(
    "uri", ["https://evil%2eorg.www.example.com/", "https://evil.org\\@www.example.com/"]
)
def test_uri_hosts_a_client_would_read_otherwise_are_refused(uri: str) -> None:
    """Percent-encoding or a backslash in the authority: a client may see another host than a
    naive split (evil.org), so neither an allow nor a deny list matches it."""
    for policy in (
        x509_policy(Names(uri=["*.example.com"]), Names()),
        x509_policy(Names(), Names(uri=["evil.org"])),
    ):
        err = refusal(policy, uri)
        assert err.public == "error validating certificate"


def test_idna_2008_not_2003() -> None:
    """`faß` is its own name under IDNA 2008 (Go's), not `fass` as IDNA 2003 would have it."""
    deny = x509_policy(Names(), Names(email=["@xn--fa-hia.de"]))
    assert deny is not None
    assert not allows(deny, "ann@faß.de")
    assert allows(deny, "ann@fass.de")


def test_dns_deny_wins_over_allow() -> None:
    policy = x509_policy(Names(dns=["*.example.com"]), Names(dns=["bad.example.com"]))
    assert allows(policy, "good.example.com")
    err = refusal(policy, "BAD.example.com")
    assert err.public == FORBIDDEN + 'dns name "BAD.example.com" not allowed'
    assert err.kind is ErrorKind.FORBIDDEN and err.verbatim


def test_deny_only_allows_everything_else() -> None:
    policy = x509_policy(Names(), Names(dns=["*.internal.test"], ip=["10.0.0.0/8"]))
    assert allows(policy, "www.example.com", "192.168.1.1", "me@example.com", "spiffe://x.test/a")
    assert not allows(policy, "db.internal.test")
    assert not allows(policy, "10.20.30.40")


def test_a_name_that_cannot_be_parsed_is_not_a_policy_denial() -> None:
    policy = x509_policy(Names(dns=["*.example.com"]), Names())
    err = refusal(policy, "under_score.example.com")
    assert err.public == "error validating certificate" and not err.verbatim
    assert err.reason == 'cannot parse dns domain "under_score.example.com"'


# --- other name types -----------------------------------------------------------------------


def test_ip_ranges_and_single_addresses() -> None:
    policy = x509_policy(Names(ip=["127.0.0.0/24", "10.1.2.3", "2001:db8::/32"]), Names())
    for ok in ("127.0.0.1", "127.0.0.255", "10.1.2.3", "2001:db8::1", "::ffff:127.0.0.9"):
        assert allows(policy, ok), ok
    for bad in ("127.0.1.1", "10.1.2.4", "2001:db9::1", "::1"):
        assert not allows(policy, bad), bad
    assert refusal(policy, "127.0.1.1").message == 'ip name "127.0.1.1" not allowed'


def test_ip_deny_inside_allowed_range() -> None:
    policy = x509_policy(Names(ip=["10.0.0.0/8"]), Names(ip=["10.0.0.0/24"]))
    assert allows(policy, "10.1.0.1")
    assert not allows(policy, "10.0.0.7")


@pytest.mark.parametrize(
    ("constraint", "email", "allowed"),
    [
        ("@example.com", "mail@example.com", True),
        ("@example.com", "mail@EXAMPLE.com", True),
        ("example.com", "mail@example.com", True),
        ("@example.com", "mail@sub.example.com", False),
        ("@example.com", "mail@otherexample.com", False),
        ("mail@example.com", "mail@example.com", True),
        ("mail@example.com", "other@example.com", False),
        ("mail@example.com", "Mail@example.com", False),  # the local part is exact
        ("mail@example.com", "mail@local", False),
    ],
)
def test_email_domain_or_mailbox(constraint: str, email: str, allowed: bool) -> None:
    assert allows(x509_policy(Names(email=[constraint]), Names()), email) is allowed


def test_email_that_is_no_mailbox() -> None:
    err = refusal(x509_policy(Names(email=["@example.com"]), Names()), "a..b@example.com")
    assert err.reason == 'cannot parse email rfc822Name "a..b@example.com"'


@pytest.mark.parametrize(
    ("uri", "allowed"),
    [
        ("spiffe://www.example.com/workload", True),
        ("https://www.EXAMPLE.com:8443/path", True),
        ("https://user@www.example.com/", True),
        ("https://example.com/", False),
        ("https://a.b.example.com/", False),
    ],
)
def test_uri_domains(uri: str, allowed: bool) -> None:
    assert allows(x509_policy(Names(uri=["*.example.com"]), Names()), uri) is allowed


@pytest.mark.parametrize(
    "uri",
    [
        "urn:uuid:1234",
        "https://*.example.com/",
        "https://10.0.0.1/",
    ],
)
def test_uri_without_a_domain_cannot_be_matched(uri: str) -> None:
    err = refusal(x509_policy(Names(uri=["*.example.com"]), Names()), uri)
    assert err.reason == f'error matching uri name "{uri}" to constraint'
    assert err.public == "error validating certificate"


@pytest.mark.parametrize(
    ("allow", "name", "kind"),
    [
        (Names(dns=["*.example.com"]), "10.0.0.1", "ip"),
        (Names(dns=["*.example.com"]), "me@example.com", "email"),
        (Names(dns=["*.example.com"]), "spiffe://www.example.com", "uri"),
        (Names(ip=["10.0.0.0/8"]), "www.example.com", "dns"),
        (Names(email=["@example.com"]), "www.example.com", "dns"),
        (Names(uri=["*.example.com"]), "10.0.0.1", "ip"),
    ],
)
def test_an_allow_list_refuses_types_it_does_not_name(allow: Names, name: str, kind: str) -> None:
    assert refusal(x509_policy(allow, Names()), name).message == f'{kind} name "{name}" not allowed'


# --- the subject common name ----------------------------------------------------------------


def test_common_name_checked_as_the_san_it_looks_like() -> None:
    policy = x509_policy(Names(dns=["*.example.com"], ip=["10.0.0.0/8"]), Names())
    assert allows(policy, "www.example.com", cn="www.example.com")
    assert allows(policy, "www.example.com", cn="10.1.1.1")
    assert allows(policy, "www.example.com", cn="")  # an empty CN is not checked
    err = refusal(policy, "www.example.com", cn="evil.test")
    assert err.public == FORBIDDEN + 'cn name "evil.test" not allowed'
    assert refusal(policy, "www.example.com", cn="My Laptop").reason == (
        'cannot parse cn domain "My Laptop"'
    )


def test_common_name_allow_and_deny_lists() -> None:
    policy = x509_policy(Names(cn=["My Laptop"], dns=["*.example.com"]), Names())
    assert allows(policy, "www.example.com", cn="my laptop")
    assert allows(policy, "www.example.com", cn="www.example.com")  # checked as a DNS name
    assert not allows(policy, "www.example.com", cn="Other Laptop")
    denied = x509_policy(Names(), Names(cn=["root"]))
    assert allows(denied, cn="some other name")
    assert not allows(denied, cn="ROOT")  # step-ca would check it as a DNS name, and allow it


def test_deny_entry_catches_literal_wildcards() -> None:
    """Stricter than step-ca, which lets `*.example.com` past a `*.example.com` deny entry."""
    policy = x509_policy(Names(), Names(dns=["*.example.com"]))
    assert not allows(policy, "*.example.com")
    assert not allows(policy, "www.example.com")
    assert allows(policy, "*.other.test")  # no allow list: a wildcard is not refused


def test_sans_helper_checks_no_common_name() -> None:
    policy = x509_policy(Names(dns=["*.example.com"]), Names())
    assert policy is not None
    policy.check_sans(["www.example.com"])
    with pytest.raises(PolicyError):
        policy.check_sans(["10.0.0.1"])


# --- SSH --------------------------------------------------------------------------------------


def ssh_allows(policy: NamePolicy | None, host: bool, *principals: str) -> bool:
    assert policy is not None
    try:
        policy.check_ssh(host, principals)
    except PolicyError:
        return False
    return True


def test_ssh_host_principals_are_dns_names_and_ips() -> None:
    policy = ssh_policy(Names(dns=["*.example.com"], ip=["10.0.0.0/8"]), Names())
    assert ssh_allows(policy, True, "web.example.com", "10.0.0.5")
    assert not ssh_allows(policy, True, "web.other.test")
    # a bare host name is a DNS name: a `principal` list does not allow it
    assert not ssh_allows(ssh_policy(Names(principal=["localhost"]), Names()), True, "localhost")


def test_ssh_user_principals_and_emails() -> None:
    policy = ssh_policy(Names(email=["@example.com"], principal=["alice", "bob"]), Names())
    assert ssh_allows(policy, False, "alice", "BOB", "alice@example.com")
    assert not ssh_allows(policy, False, "root")
    assert not ssh_allows(policy, False, "alice@other.test")
    assert not ssh_allows(policy, False, "10.0.0.1")  # no IPs in a user certificate
    anyone = ssh_policy(Names(principal=["*"]), Names(principal=["root"]))
    assert ssh_allows(anyone, False, "whoever")
    assert not ssh_allows(anyone, False, "root")
    assert anyone is not None
    with pytest.raises(PolicyError) as err:
        anyone.check_ssh(False, ["root"])
    assert err.value.public == FORBIDDEN + 'principal name "root" not allowed'


def test_ssh_policy_for_one_certificate_type_refuses_the_other() -> None:
    only_user = IssuancePolicy(ssh_user=ssh_policy(Names(principal=["alice"]), Names()))
    only_user.check_ssh(False, ["alice"])
    with pytest.raises(PolicyError) as caught:
        only_user.check_ssh(True, ["host.example.com"])
    assert caught.value.public == "error validating ssh certificate"
    IssuancePolicy().check_ssh(True, ["anything"])  # no rules: anything goes


# --- loading --------------------------------------------------------------------------------


def test_blocks_that_name_nothing_are_no_policy() -> None:
    assert x509_policy(Names(), Names(), wildcards=True) is None
    assert ssh_policy(Names(), Names()) is None
    assert not IssuancePolicy()


@pytest.mark.parametrize(
    ("allow", "message"),
    [
        (Names(ip=["10.0.0.0/33"]), 'cannot parse permitted constraint "10.0.0.0/33" as IP '
         "nor CIDR"),
        (Names(ip=["not-an-ip"]), 'cannot parse permitted constraint "not-an-ip" as IP nor CIDR'),
        (Names(dns=["*"]), 'cannot parse permitted domain constraint "*": domain constraint "*" '
         "can not be converted to ASCII: idna: disallowed rune U+002A"),
        (Names(dns=["*.*.example.com"]), 'cannot parse permitted domain constraint '
         '"*.*.example.com": domain constraint "*.*.example.com" can only have wildcard as '
         "starting character"),
        (Names(dns=[".example.com"]), 'cannot parse permitted domain constraint ".example.com": '
         'domain constraint ".example.com" with wildcard should start with *'),
        (Names(dns=["*example.com"]), 'cannot parse permitted domain constraint "*example.com": '
         'wildcard character in domain constraint "*example.com" can only be used to match '
         "(full) labels"),
        (Names(dns=["a..example.com"]), 'cannot parse permitted domain constraint '
         '"a..example.com": domain constraint "a..example.com" cannot have empty labels'),
        (Names(dns=[" "]), 'cannot parse permitted domain constraint " ": constraint " " can '
         "not be empty or white space string"),
        (Names(email=["*@example.com"]), 'cannot parse permitted email constraint '
         '"*@example.com": email constraint "*@example.com" cannot contain asterisk wildcard'),
        (Names(email=["a@b@example.com"]), 'cannot parse permitted email constraint '
         '"a@b@example.com": email constraint "a@b@example.com" contains too many @ characters'),
        (Names(uri=["https://example.com"]), 'cannot parse permitted URI domain constraint '
         '"https://example.com": URI domain constraint "https://example.com" contains scheme '
         "(not supported yet)"),
        (Names(uri=["example.com:443"]), 'cannot parse permitted URI domain constraint '
         '"example.com:443": URI domain constraint "example.com:443" cannot contain port'),
        (Names(uri=["10.0.0.1"]), 'cannot parse permitted URI domain constraint "10.0.0.1": '
         'URI domain constraint "10.0.0.1" cannot be an IP'),
        (Names(cn=["*"]), 'cannot parse permitted common name constraint "*": wildcard '
         'constraint "*" is not supported'),
    ],
)  # fmt: skip
def test_invalid_constraints_refused_at_load(allow: Names, message: str) -> None:
    with pytest.raises(PolicyConfigError) as caught:
        x509_policy(allow, Names())
    assert str(caught.value) == message


def test_invalid_deny_constraint_says_excluded() -> None:
    with pytest.raises(PolicyConfigError, match=r'^cannot parse excluded constraint "x" as IP'):
        ssh_policy(Names(), Names(ip=["x"]))
