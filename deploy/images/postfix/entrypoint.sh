#!/bin/sh
# facteur/postfix: copy the mounted config and TLS secrets where Postfix wants
# them (smtpd reads its key as user postfix), then `postfix start-fg`.
set -e
if [ -d /etc/facteur/postfix ]; then
    cp /etc/facteur/postfix/main.cf /etc/facteur/postfix/master.cf /etc/postfix/
fi
mkdir -p /etc/postfix/tls
for f in tls_cert tls_key public_ca; do
    if [ -r "/run/secrets/$f" ]; then
        cp "/run/secrets/$f" "/etc/postfix/tls/$f.pem"
    fi
done
chown -R postfix:postfix /etc/postfix/tls
chmod 600 /etc/postfix/tls/*.pem 2>/dev/null || true
cp /etc/resolv.conf /etc/hosts /etc/services /var/spool/postfix/etc/ 2>/dev/null || true
postfix set-permissions >/dev/null 2>&1 || true
postfix check
exec postfix start-fg
