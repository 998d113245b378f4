#!/bin/sh
# Writes the secrets compose.yaml reads, once, with fresh random values:
#   secrets/postgres_password   PostgreSQL's password (a compose secret)
#   secrets/dlrhub.env          DLRHUB_* variables for every dlrhub container (env_file)
# Existing files are kept. Replace the Onurix key with your account's.
set -eu
cd "$(dirname "$0")"
umask 077
mkdir -p secrets
random() { head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n'; }
if [ ! -f secrets/postgres_password ]; then
    random > secrets/postgres_password
fi
if [ ! -f secrets/dlrhub.env ]; then
    cat > secrets/dlrhub.env <<ENV
DLRHUB_STORE__DSN=postgresql://dlrhub:$(cat secrets/postgres_password)@postgres:5432/dlrhub
DLRHUB_ADMIN_TOKEN=$(random)
DLRHUB_SOURCES__NRS360__TOKEN=$(random)
DLRHUB_ACCOUNTS__ONURIX_MAIN__KEY=replace-with-your-onurix-key
ENV
fi
echo "secrets in $(pwd)/secrets (mode 0600); the source token for the provider's URLs:"
grep '^DLRHUB_SOURCES__NRS360__TOKEN=' secrets/dlrhub.env | cut -d= -f2
