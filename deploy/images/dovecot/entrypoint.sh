#!/bin/sh
# facteur/dovecot: copy the TLS secrets (tls_cert, tls_key) and the passwd-file
# secret (passwd: user:{SCHEME}hash::::::, made by deploy/init) where Dovecot
# reads them, then `dovecot -F`. Mail: Maildir++ under /var/mail/vhosts.
set -e
mkdir -p /etc/dovecot/tls /var/mail/vhosts /var/lib/dovecot/index
for f in tls_cert tls_key; do
    if [ -r "/run/secrets/$f" ]; then
        cp "/run/secrets/$f" "/etc/dovecot/tls/$f.pem"
    fi
done
chmod 600 /etc/dovecot/tls/tls_key.pem 2>/dev/null || true
if [ -r /run/secrets/passwd ]; then
    cp /run/secrets/passwd /etc/dovecot/passwd
    chmod 644 /etc/dovecot/passwd
fi
chown -R mail:mail /var/mail/vhosts /var/lib/dovecot/index
if [ -r /etc/facteur/dovecot/dovecot.conf ]; then
    exec dovecot -F -c /etc/facteur/dovecot/dovecot.conf
fi
exec dovecot -F
