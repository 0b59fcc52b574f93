#!/usr/bin/env bash
# cURL quick-start: the four skills, with the image as a file, a data URL and a raw body.
#
#   dreamforge sample photo.png
#   DREAMFORGE_API_KEY=df_... bash examples/quickstart.sh photo.png
set -euo pipefail
URL=${DREAMFORGE_URL:-http://127.0.0.1:8080}
AUTH="Authorization: Bearer ${DREAMFORGE_API_KEY:?set DREAMFORGE_API_KEY to a key with scope app}"
IMAGE=${1:-photo.png}

echo "caption:"   # a multipart form with the file
curl -sS --fail-with-body "$URL/v1/caption" -H "$AUTH" -F image=@"$IMAGE" -F length=short; echo
echo "query:"     # JSON with the image as a data URL (Moondream's request shape)
printf '{"image_url": "data:image/png;base64,%s", "question": "What colour is the circle?"}' \
  "$(base64 -w0 "$IMAGE")" |
  curl -sS --fail-with-body "$URL/v1/query" -H "$AUTH" -H 'content-type: application/json' --data-binary @-; echo
echo "detect:"    # the raw file as the body, the other fields in the query string
curl -sS --fail-with-body "$URL/v1/detect?object=orange%20circle" -H "$AUTH" -H 'content-type: image/png' \
  --data-binary @"$IMAGE"; echo
echo "point:"
curl -sS --fail-with-body "$URL/v1/point" -H "$AUTH" -F image=@"$IMAGE" -F object="orange circle"; echo
echo "stream:"    # server-sent events: data: {"chunk": ...} ... data: {"completed": true, ...}
curl -sS -N --fail-with-body "$URL/v1/query" -H "$AUTH" -F image=@"$IMAGE" \
  -F question="What colour is the triangle?" -F stream=true
