"""`step ca`: talk to a certificate authority (and `step ca init` to create one)."""

from __future__ import annotations

from cli.ca import (
    acme_eab,
    ceremony,
    init,
    issue,
    lifecycle,
    provisioner_admin,
    sign,
    trust,
)
from cli.helptext import StepTyper

app = StepTyper(help="Initialise a CA, bootstrap trust in it, and get certificates from it.")
app.command(name="init")(init.init_command)
app.command(name="bootstrap")(trust.bootstrap_command)
app.command(name="root")(trust.root_command)
app.command(name="roots")(trust.roots_command)
app.command(name="federation")(trust.federation_command)
app.command(name="health")(trust.health_command)
app.command(name="token")(issue.token_command)
app.command(name="certificate")(issue.certificate_command)
app.command(name="sign")(sign.sign_command)
app.command(name="renew")(lifecycle.renew_command)
app.command(name="rekey")(lifecycle.rekey_command)
app.command(name="revoke")(lifecycle.revoke_command)

provisioner_app = StepTyper(
    help="List the CA's provisioners; add, update or remove them in its configuration."
)
provisioner_app.command(name="list")(trust.provisioner_list_command)
provisioner_app.command(name="add")(provisioner_admin.add_command)
provisioner_app.command(name="update")(provisioner_admin.update_command)
provisioner_app.command(name="remove")(provisioner_admin.remove_command)
app.add_typer(provisioner_app, name="provisioner")
app.add_typer(ceremony.app, name="ceremony")

eab_app = StepTyper(help="Create and manage ACME External Account Binding keys.")
eab_app.command(name="add")(acme_eab.add_command)
eab_app.command(name="list")(acme_eab.list_command)
eab_app.command(name="remove")(acme_eab.remove_command)
acme_app = StepTyper(help="Manage ACME.")
acme_app.add_typer(eab_app, name="eab")
app.add_typer(acme_app, name="acme")
