#!/usr/bin/env bash
# The README's first query: the home-care nurse reads a patient of her unit, then a nurse of another
# municipality asks for the same patient and is refused with a reason. Run `make run` first.
set -euo pipefail
cd "$(dirname "$0")/.."
URL="${AKSON_URL:-http://127.0.0.1:8000}/graphql"
PATIENT="UGF0aWVudDphMTFjZTAwMC0wMDAwLTQwMDAtODAwMC0wMDAwMDAwMDAyMDE="   # Ola Nordmann (`akson personas`)
QUERY='{"query":"query($id: ID!) { patient(id: $id) { id name { text } birthDate } }","variables":{"id":"'"$PATIENT"'"}}'

for persona in homecare-nurse nurse-other-municipality; do
  TOKEN=$(.venv/bin/akson token --persona "$persona" 2>/dev/null | tail -1)
  echo "== as $persona"
  curl -s "$URL" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d "$QUERY"
  echo
done
