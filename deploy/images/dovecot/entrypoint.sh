#!/bin/sh
# facteur/dovecot: write the passwd-file for $DOVECOT_USERS (space-separated
# addresses) with the password of /run/secrets/password (SHA512-CRYPT), copy
# the TLS secrets, then `dovecot -F`. Mail: Maildir++ under /var/mail/vhosts.
set -e
mkdir -p /etc/dovecot/tls /var/mail/vhosts /var/lib/dovecot/index
for f in cert key; do
    if [ -r "/run/secrets/$f" ]; then
        cp "/run/secrets/$f" "/etc/dovecot/tls/$f.pem"
    fi
done
chmod 600 /etc/dovecot/tls/key.pem 2>/dev/null || true
if [ -n "$DOVECOT_USERS" ] && [ -r /run/secrets/password ]; then
    hash=$(doveadm pw -s SHA512-CRYPT -p "$(cat /run/secrets/password)")
    : > /etc/dovecot/passwd
    for u in $DOVECOT_USERS; do
        echo "$u:$hash::::::" >> /etc/dovecot/passwd
    done
    chmod 644 /etc/dovecot/passwd
fi
chown -R mail:mail /var/mail/vhosts /var/lib/dovecot/index
if [ -r /etc/facteur/dovecot/dovecot.conf ]; then
    exec dovecot -F -c /etc/facteur/dovecot/dovecot.conf
fi
exec dovecot -F
