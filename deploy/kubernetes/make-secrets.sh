#!/bin/sh
# Creates the files kustomization.yaml's secretGenerator turns into the
# Secret parley-secrets (kept out of git by .gitignore). Existing files
# are kept, so running it again never rotates a secret by accident.
#   jwt_keys       HS256 secrets for client tokens, one a line, the
#                  signing one first (see docs/operations.md, rotation)
#   admin_token    bearer token of the admin API (the CLI reads it too)
#   firebase_auth  Firebase auth= token; replace "unused" when the sync is on
set -eu
cd "$(dirname "$0")"
umask 077
mkdir -p secrets
[ -s secrets/jwt_keys ] || openssl rand -hex 32 > secrets/jwt_keys
[ -s secrets/admin_token ] || openssl rand -hex 32 > secrets/admin_token
[ -s secrets/firebase_auth ] || echo unused > secrets/firebase_auth
echo "secrets in $(pwd)/secrets: jwt_keys admin_token firebase_auth"
