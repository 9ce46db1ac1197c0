#!/bin/sh
# Certificates for compose/etcd-tls.yml, in compose/certs: one CA; etcd's,
# the nodes' and the managers' server certificates (valid for their service
# names), and client certificates for swarmctl (kv.*) and the docker CLI.
set -eu
cd "$(dirname "$0")"
mkdir -p certs && cd certs
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca-key.pem -out ca.pem -days 365 -subj /CN=swarmctl-ca 2>/dev/null
issue() {  # name, subjectAltName, extendedKeyUsage
    openssl req -newkey rsa:2048 -nodes -keyout "$1-key.pem" -out "$1.csr" -subj "/CN=$1" 2>/dev/null
    printf 'subjectAltName=%s\nextendedKeyUsage=%s\n' "$2" "$3" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 365 \
        -extfile "$1.ext" -out "$1.pem" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}
issue etcd "DNS:etcd1,DNS:etcd2,DNS:etcd3,DNS:localhost,IP:127.0.0.1" serverAuth,clientAuth
issue node "DNS:node1,DNS:node2,DNS:node3,DNS:localhost,IP:127.0.0.1" serverAuth,clientAuth
issue manager "DNS:manager1,DNS:manager2,DNS:localhost,IP:127.0.0.1" serverAuth,clientAuth
issue client "DNS:client" clientAuth
chmod 0644 ./*.pem
echo "certificates in $(pwd)"
