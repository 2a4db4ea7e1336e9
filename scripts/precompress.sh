#!/usr/bin/env bash
# Writes .gz (gzip -9) and .br (brotli -q 11) beside each WASM, JS and CSS file in the given
# directories, for the server (and any static host) to send to clients that accept them.
# Without the brotli command only .gz is written, and the server sends gzip.
set -euo pipefail
[ $# -gt 0 ] || { echo "usage: $0 DIR..." >&2; exit 2; }
have_brotli=1
command -v brotli >/dev/null 2>&1 || { have_brotli=0; echo "precompress: no brotli command (apt-get install brotli): writing .gz only" >&2; }
for dir in "$@"; do
    [ -d "$dir" ] || { echo "precompress: no directory $dir" >&2; exit 1; }
    find "$dir" -maxdepth 1 -type f \( -name '*.wasm' -o -name '*.js' -o -name '*.css' \) -print0 |
        while IFS= read -r -d '' file; do
            gzip -9 -n -k -f "$file"
            if [ "$have_brotli" = 1 ]; then brotli -q 11 -k -f "$file"; else rm -f "$file.br"; fi
            # The server sends a sibling only if it is not older than its file; brotli keeps the
            # file's time to the second only, which is older: give both the file's exact time.
            touch -r "$file" "$file.gz"
            [ ! -e "$file.br" ] || touch -r "$file" "$file.br"
        done
done
