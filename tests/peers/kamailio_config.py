"""Kamailio's configuration for the peer tests, rendered from templates (pure).

The registrar answers REGISTER only after digest auth against an htable of passwords
keyed by auth user, keeps locations in memory, answers OPTIONS for liveness, and relays an
INVITE for a registered user to its contact (record-routed, so the whole dialog passes).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final, Literal

_PLACEHOLDER = re.compile(r"@[A-Z_]+@")

# Placeholders are @NAME@ because Kamailio's own syntax uses $ and braces everywhere.
CONFIG = r"""#!KAMAILIO
debug=2
log_stderror=yes
children=2
tcp_children=2
auto_aliases=no
# No port-less alias: UAs on 127.0.0.1 would count as "myself" and in-dialog routing breaks.
# The realm is ours: a call to sip:<user>@<realm> is looked up in the location table.
alias=@REALM@
listen=udp:@HOST@:@SIP_PORT@
listen=tcp:@HOST@:@SIP_PORT@
listen=tls:@HOST@:@TLS_PORT@
enable_tls=yes
mpath="@MODULES@"

loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "siputils.so"
loadmodule "textops.so"
loadmodule "xlog.so"
loadmodule "kex.so"
loadmodule "ctl.so"
loadmodule "htable.so"
loadmodule "auth.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "nathelper.so"
loadmodule "tls.so"

modparam("ctl", "binrpc", "unix:@CTL@")
modparam("htable", "htable", "creds=>size=4;")
modparam("usrloc", "db_mode", 0)
modparam("registrar", "min_expires", @MIN_EXPIRES@)
modparam("registrar", "min_expires_mode", @MIN_EXPIRES_MODE@)
modparam("registrar", "max_expires", @MAX_EXPIRES@)
modparam("registrar", "received_avp", "$avp(RECEIVED)")
modparam("nathelper", "received_avp", "$avp(RECEIVED)")
modparam("tls", "config", "@TLS_CFG@")
@AUTH_PARAMS@

event_route[htable:mod-init] {
@SEED@
}

request_route {
    if (!mf_process_maxfwd_header("10")) {
        sl_send_reply("483", "Too Many Hops");
        exit;
    }
    force_rport();
    if (has_totag()) {
        route(IN_DIALOG);
    }
    if (is_method("CANCEL")) {
        if (t_check_trans()) {
            xlog("L_NOTICE", "relay CANCEL from $fU to $rU\n");  # for tests to see
            t_relay();
        }
        exit;
    }
    t_check_trans();
    if (is_method("OPTIONS") && uri == myself && $rU == $null) {
        sl_send_reply("200", "OK");
        exit;
    }
    if (is_method("REGISTER")) {
        route(REGISTRAR);
    }
@INVITE_AUTH@
    if (is_method("INVITE") && proto == TLS) {
        set_contact_alias();  # the caller's connection, for the requests that come back
    }
    if (uri == myself) {
        route(LOCATION);
    }
    route(RELAY);
}

route[REGISTRAR] {
    # A missing, unknown or wrong credential is challenged again: 401, as auth_db does.
    if (!is_present_hf("Authorization") || $sht(creds=>$au) == $null) {
        auth_challenge("@REALM@", "1");
        exit;
    }
    # Check flag 0: the auth user (the agent's user_id) may differ from the To user.
    if (!pv_auth_check("@REALM@", "$sht(creds=>$au)", "0", "0")) {
        auth_challenge("@REALM@", "1");
        exit;
    }
    consume_credentials();
    # 1 private Contact, 2 Via host != source, 16 rport, 128 Contact port != source port.
    if (nat_uac_test("147")) {
        fix_nated_register();
    }
    if (!save("location")) {
        sl_reply_error();
    }
    exit;
}

# Only with auth_invites: a new INVITE from one of our users must prove it, as a proxy
# that lets no one call through it on another's account does (407, Proxy-Authorization).
# Each step is logged with the From user, for a test to count the challenges.
route[INVITE_AUTH] {
    if (!is_method("INVITE") || has_totag() || $sht(creds=>$fU) == $null) {
        return;
    }
    if (!is_present_hf("Proxy-Authorization") || $sht(creds=>$au) == $null) {
        xlog("L_NOTICE", "invite-auth $fU: challenged\n");
        auth_challenge("@REALM@", "1");
        exit;
    }
    if (!pv_proxy_authenticate("@REALM@", "$sht(creds=>$au)", "0")) {
        xlog("L_NOTICE", "invite-auth $fU: refused\n");
        auth_challenge("@REALM@", "1");
        exit;
    }
    xlog("L_NOTICE", "invite-auth $fU: authorized\n");
    consume_credentials();
}

route[LOCATION] {
    if (!lookup("location")) {
        sl_send_reply("404", "Not Found");
        exit;
    }
    if (is_method("INVITE")) {
        record_route();
        t_on_reply("CALLEE_FLOW");
    }
}

# A callee reached over its registered TLS connection cannot be reached again at its
# Contact (it listens for no TLS): as for a UA behind NAT, the Contact of its answer gets
# an alias naming that connection, and in-dialog requests follow it (handle_ruri_alias).
onreply_route[CALLEE_FLOW] {
    if (proto == TLS) {
        set_contact_alias();
    }
}

route[IN_DIALOG] {
    if (loose_route()) {
        handle_ruri_alias();
        route(RELAY);
    }
    if (is_method("ACK") && t_check_trans()) {
        route(RELAY);
    }
    if (!is_method("ACK")) {
        sl_send_reply("404", "Not here");
    }
    exit;
}

route[RELAY] {
    if (!t_relay()) {
        sl_reply_error();
    }
    exit;
}
"""

TLS_CONFIG = """[server:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
private_key = @KEY@
certificate = @CERT@

[client:default]
method = TLSv1.2+
verify_certificate = no
require_certificate = no
"""


# How the auth module keeps nonces: Kamailio's default (a nonce, made from the time, good
# until it expires), or one that makes a new nonce with every challenge and takes each once
# (one_time_nonce) or only with a growing nonce count (nonce_count, needs qop).
AUTH_PARAMS: Final = {
    "default": "",
    "one_time_nonce": 'modparam("auth", "one_time_nonce", 1)',
    "nonce_count": 'modparam("auth", "nonce_count", 1)',
}
NonceMode = Literal["default", "one_time_nonce", "nonce_count"]

# What the request route does before relaying an INVITE: nothing, or route[INVITE_AUTH].
INVITE_AUTH: Final = {False: "", True: "    route(INVITE_AUTH);"}


def fill(template: str, values: Mapping[str, object]) -> str:
    """Replace each @NAME@ in `template`; fail on any left over."""
    for name, value in values.items():
        template = template.replace(f"@{name}@", str(value))
    left = _PLACEHOLDER.search(template)
    if left:
        raise ValueError(f"unfilled placeholder {left.group()}")
    return template


def seed_lines(users: Mapping[str, str]) -> str:
    """Config lines that put each user's password into the htable at start-up."""
    # The key goes through a $var so that it, too, is a quoted string, not pv syntax.
    return "\n".join(
        f'    $var(user) = "{_literal(user)}"; $sht(creds=>$var(user)) = "{_literal(password)}";'
        for user, password in users.items()
    )


def _literal(text: str) -> str:
    # Kamailio string literals know backslash escapes; plain test credentials need none.
    if not text or any(c in text for c in '"\\\r\n'):
        raise ValueError(f"unsupported credential {text!r}: no quotes, backslashes, newlines")
    return text
